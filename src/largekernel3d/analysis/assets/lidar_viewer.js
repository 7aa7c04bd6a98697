// An offline WebGL viewer of a point cloud with 3D boxes, embedded by largekernel3d.analysis.html_view.
//
// Reads the JSON in <script id="lk3d-data">: base64 little-endian arrays
//   points      float32 [N * 3]  x, y, z (metres, z up)
//   colors      uint8   [N * 3]  r, g, b per point
//   lines       float32 [L * 6]  segment end points (box edges and heading ticks)
//   line_colors uint8   [L * 6]  r, g, b at both ends of every segment
// and tags    [{text, x, y, z, color}] drawn as HTML labels at projected positions.
// Mouse: left drag orbits, right drag (or shift + left drag) pans, wheel zooms; keys: r resets the view,
// + / - change the point size. After the first frame the page writes data-status="ok" and
// data-drawn-pixels (canvas pixels that differ from the background) on <body>; on any error data-status
// holds "error: <message>".
(function () {
  "use strict";
  var body = document.body;
  function fail(message) {
    body.setAttribute("data-status", "error: " + message);
    var box = document.getElementById("lk3d-error");
    if (box) { box.textContent = "viewer error: " + message; box.style.display = "block"; }
  }
  window.addEventListener("error", function (ev) { fail(ev.message || String(ev)); });

  function decode(b64, Type) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  // ----- 4x4 column-major matrices ---------------------------------------------------------------------
  function perspective(fovy, aspect, near, far) {
    var f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
  }
  function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function normalize(a) { var n = Math.sqrt(dot(a, a)) || 1; return [a[0] / n, a[1] / n, a[2] / n]; }
  function lookAt(eye, target, up) {
    var f = normalize(sub(target, eye)), s = normalize(cross(f, up)), u = cross(s, f);
    return [s[0], u[0], -f[0], 0, s[1], u[1], -f[1], 0, s[2], u[2], -f[2], 0,
            -dot(s, eye), -dot(u, eye), dot(f, eye), 1];
  }
  function multiply(a, b) {
    var out = new Array(16);
    for (var c = 0; c < 4; c++) for (var r = 0; r < 4; r++) {
      var v = 0;
      for (var k = 0; k < 4; k++) v += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = v;
    }
    return out;
  }

  // ----- GL setup --------------------------------------------------------------------------------------
  var VERTEX = "attribute vec3 position; attribute vec3 color; uniform mat4 mvp; uniform float size;" +
    "varying vec3 vColor; void main() { gl_Position = mvp * vec4(position, 1.0); gl_PointSize = size;" +
    " vColor = color; }";
  var FRAGMENT = "precision mediump float; varying vec3 vColor; void main() { gl_FragColor = vec4(vColor, 1.0); }";

  function compile(gl, type, source) {
    var shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  function start() {
    var data = JSON.parse(document.getElementById("lk3d-data").textContent);
    var canvas = document.getElementById("lk3d-canvas");
    var gl = canvas.getContext("webgl", {antialias: true, preserveDrawingBuffer: true}) ||
             canvas.getContext("experimental-webgl", {preserveDrawingBuffer: true});
    if (!gl) { fail("this browser has no WebGL"); return; }
    var program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    gl.useProgram(program);
    var loc = {position: gl.getAttribLocation(program, "position"), color: gl.getAttribLocation(program, "color"),
               mvp: gl.getUniformLocation(program, "mvp"), size: gl.getUniformLocation(program, "size")};

    function buffers(xyzB64, rgbB64) {
      var xyz = decode(xyzB64, Float32Array), rgb = decode(rgbB64, Uint8Array);
      var pos = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, pos); gl.bufferData(gl.ARRAY_BUFFER, xyz, gl.STATIC_DRAW);
      var col = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, col); gl.bufferData(gl.ARRAY_BUFFER, rgb, gl.STATIC_DRAW);
      return {pos: pos, col: col, count: xyz.length / 3, xyz: xyz};
    }
    var cloud = buffers(data.points, data.colors);
    var lines = buffers(data.lines, data.line_colors);
    var sizeRange = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE);

    // ----- camera: orbit about a target, z up -----------------------------------------------------------
    var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    [cloud.xyz, lines.xyz].forEach(function (a) {
      for (var i = 0; i < a.length; i += 3) for (var k = 0; k < 3; k++) {
        if (a[i + k] < lo[k]) lo[k] = a[i + k];
        if (a[i + k] > hi[k]) hi[k] = a[i + k];
      }
    });
    if (!isFinite(lo[0])) { lo = [-1, -1, -1]; hi = [1, 1, 1]; }
    var extent = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1e-3);
    var home = {target: [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2],
                yaw: -Math.PI / 2 - 0.5, pitch: 0.75, distance: 0.9 * extent};
    var cam = {};
    function reset() { cam = {target: home.target.slice(), yaw: home.yaw, pitch: home.pitch, distance: home.distance}; }
    reset();
    var pointSize = data.point_size || 2.0;
    var sizeInput = document.getElementById("lk3d-size");
    sizeInput.value = pointSize;

    function eyePosition() {
      var cp = Math.cos(cam.pitch);
      return [cam.target[0] + cam.distance * cp * Math.cos(cam.yaw), cam.target[1] + cam.distance * cp * Math.sin(cam.yaw),
              cam.target[2] + cam.distance * Math.sin(cam.pitch)];
    }
    function matrix() {
      var aspect = canvas.width / Math.max(canvas.height, 1);
      var proj = perspective(50 * Math.PI / 180, aspect, Math.max(cam.distance * 1e-3, 1e-3), cam.distance + 4 * extent);
      return multiply(proj, lookAt(eyePosition(), cam.target, [0, 0, 1]));
    }

    function bind(buf) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buf.pos);
      gl.enableVertexAttribArray(loc.position);
      gl.vertexAttribPointer(loc.position, 3, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, buf.col);
      gl.enableVertexAttribArray(loc.color);
      gl.vertexAttribPointer(loc.color, 3, gl.UNSIGNED_BYTE, true, 0, 0);
    }

    var tagLayer = document.getElementById("lk3d-tags"), tagNodes = [];
    (data.tags || []).forEach(function (t) {
      var node = document.createElement("div");
      node.className = "lk3d-tag";
      node.textContent = t.text;
      node.style.color = t.color;
      tagLayer.appendChild(node);
      tagNodes.push(node);
    });
    var showTags = document.getElementById("lk3d-show-tags");

    function placeTags(m) {
      var w = canvas.clientWidth, h = canvas.clientHeight, on = !showTags || showTags.checked;
      (data.tags || []).forEach(function (t, i) {
        var x = m[0] * t.x + m[4] * t.y + m[8] * t.z + m[12], y = m[1] * t.x + m[5] * t.y + m[9] * t.z + m[13];
        var wc = m[3] * t.x + m[7] * t.y + m[11] * t.z + m[15];
        var node = tagNodes[i];
        if (!on || wc <= 0) { node.style.display = "none"; return; }
        node.style.display = "block";
        node.style.left = ((x / wc + 1) / 2 * w).toFixed(1) + "px";
        node.style.top = ((1 - y / wc) / 2 * h).toFixed(1) + "px";
      });
    }

    var BACKGROUND = data.background || [0.07, 0.07, 0.09];
    var firstFrame = true, pending = false;
    function draw() {
      pending = false;
      var dpr = window.devicePixelRatio || 1;
      var w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      gl.viewport(0, 0, w, h);
      gl.clearColor(BACKGROUND[0], BACKGROUND[1], BACKGROUND[2], 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.enable(gl.DEPTH_TEST);
      var m = matrix();
      gl.uniformMatrix4fv(loc.mvp, false, new Float32Array(m));
      gl.uniform1f(loc.size, Math.min(Math.max(pointSize * dpr, sizeRange[0]), sizeRange[1]));
      if (cloud.count) { bind(cloud); gl.drawArrays(gl.POINTS, 0, cloud.count); }
      // boxes are drawn over the points (no depth test), so that no point hides an outline
      gl.disable(gl.DEPTH_TEST);
      if (lines.count) { bind(lines); gl.drawArrays(gl.LINES, 0, lines.count); }
      placeTags(m);
      if (firstFrame) { firstFrame = false; report(w, h); }
    }
    function report(w, h) {
      var px = new Uint8Array(w * h * 4), bg = BACKGROUND.map(function (v) { return Math.round(v * 255); });
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
      var drawn = 0;
      for (var i = 0; i < px.length; i += 4) {
        if (Math.abs(px[i] - bg[0]) > 2 || Math.abs(px[i + 1] - bg[1]) > 2 || Math.abs(px[i + 2] - bg[2]) > 2) drawn++;
      }
      var err = gl.getError();
      if (err !== gl.NO_ERROR) { fail("WebGL error " + err); return; }
      body.setAttribute("data-drawn-pixels", String(drawn));
      if (body.getAttribute("data-status") === "loading") body.setAttribute("data-status", "ok");
    }
    function redraw() { if (!pending) { pending = true; window.requestAnimationFrame(draw); } }

    // ----- interaction -----------------------------------------------------------------------------------
    var drag = null;
    canvas.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });
    canvas.addEventListener("mousedown", function (ev) {
      drag = {x: ev.clientX, y: ev.clientY, pan: ev.button === 2 || ev.shiftKey || ev.button === 1};
      ev.preventDefault();
    });
    window.addEventListener("mouseup", function () { drag = null; });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      drag.x = ev.clientX; drag.y = ev.clientY;
      if (drag.pan) {
        var eye = eyePosition(), f = normalize(sub(cam.target, eye)), s = normalize(cross(f, [0, 0, 1])), u = cross(s, f);
        var k = cam.distance * 1.0 / Math.max(canvas.clientHeight, 1);
        for (var i = 0; i < 3; i++) cam.target[i] += (-dx * s[i] + dy * u[i]) * k;
      } else {
        cam.yaw -= dx * 0.008;
        cam.pitch = Math.min(Math.max(cam.pitch + dy * 0.008, -1.55), 1.55);
      }
      redraw();
    });
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      cam.distance = Math.min(Math.max(cam.distance * Math.exp(ev.deltaY * 0.001), extent * 1e-3), extent * 20);
      redraw();
    }, {passive: false});
    sizeInput.addEventListener("input", function () { pointSize = parseFloat(sizeInput.value) || 1; redraw(); });
    if (showTags) showTags.addEventListener("change", redraw);
    window.addEventListener("keydown", function (ev) {
      if (ev.key === "r") { reset(); redraw(); }
      if (ev.key === "+" || ev.key === "=") { pointSize = Math.min(pointSize + 0.5, 20); sizeInput.value = pointSize; redraw(); }
      if (ev.key === "-") { pointSize = Math.max(pointSize - 0.5, 0.5); sizeInput.value = pointSize; redraw(); }
    });
    window.addEventListener("resize", redraw);
    redraw();
  }

  try { start(); } catch (e) { fail(e && e.message ? e.message : String(e)); }
})();
