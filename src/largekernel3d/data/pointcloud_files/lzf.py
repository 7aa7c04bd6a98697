"""LZF decompression (the codec of PCD's ``DATA binary_compressed``), in plain Python.

The stream is a sequence of chunks, each opened by a control byte ``c``:

* ``c < 32``: a literal run, the next ``c + 1`` bytes are copied as they are;
* otherwise a back reference of length ``(c >> 5) + 2`` (``c >> 5 == 7``: plus the next byte) that copies
  from ``distance = ((c & 31) << 8) + next byte + 1`` bytes behind the end of the output (the source may
  overlap the bytes being written, which repeats a pattern).
"""

from __future__ import annotations


def lzf_decompress(data: bytes, expected_size: int) -> bytes:
    """Decompress ``data``; ``ValueError`` (saying where) for a stream that is truncated, references bytes
    before the start, or does not produce exactly ``expected_size`` bytes."""
    src = memoryview(bytes(data))
    out = bytearray()
    ip, end = 0, len(src)
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:
            n = ctrl + 1
            if ip + n > end:
                raise ValueError(
                    f"LZF literal run of {n} bytes at input offset {ip - 1} runs past the end "
                    f"({end} bytes): truncated data"
                )
            out += src[ip : ip + n]
            ip += n
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= end:
                raise ValueError(f"LZF back reference at input offset {ip - 1} is cut off: truncated data")
            length += src[ip]
            ip += 1
        if ip >= end:
            raise ValueError(f"LZF back reference at input offset {ip - 1} is cut off: truncated data")
        start = len(out) - ((ctrl & 0x1F) << 8) - src[ip] - 1
        ip += 1
        length += 2
        if start < 0:
            raise ValueError(
                f"LZF back reference at input offset {ip - 2} points {-start} bytes before the start "
                f"of the output: corrupt data"
            )
        if start + length <= len(out):
            out += out[start : start + length]
        else:  # overlapping copy: repeat the pattern byte by byte
            for k in range(length):
                out.append(out[start + k])
        if len(out) > expected_size:
            break
    if len(out) != expected_size:
        raise ValueError(f"LZF data decompress to {len(out)} bytes, the header promises {expected_size}")
    return bytes(out)
