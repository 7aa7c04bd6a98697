"""The whole-model loader's contract: configuration of largekernel3d_seg (down_padding against spconv, new
keys, defaults unchanged), every key accounted for (strict errors, non-strict warnings and report), nothing
written on failure, the det dispatch, and ``lk3d convert official``."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import random_sparse_tensor
from test_official_seg_reference import OfficialSegNet, official_state, randomise, spconv

from largekernel3d.cli.main import main as lk3d
from largekernel3d.models import build_model
from largekernel3d.models.official_seg import (
    convert_official_checkpoint,
    detect_official_seg,
    load_official_checkpoint,
    load_official_seg,
    official_seg_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(layers=(1,) * 8, planes=(8, 8, 16, 16, 16, 8, 8, 8), init_dim=4)


def _state(kinds=("spatialgroupconv",) * 4, kernels=(5, 5, 5, 5), seed=0):
    net = OfficialSegNet(3, 6, TINY["layers"], TINY["planes"], TINY["init_dim"], kernels, kinds)
    randomise(net, seed)
    return official_state(net)


def _x(seed=0):
    return random_sparse_tensor((20, 18, 22), 3, num_sites=700, dtype=torch.float32, seed=seed)


def test_down_padding_1_matches_spconv_padding_1():
    """Our engine's stride-2 down convs with padding 1 and their inverses against spconv's (plain stages)."""
    cfg = dict(
        name="largekernel3d_seg",
        in_channels=3,
        num_classes=5,
        stage_conv_types="plain",
        stage_kernel_sizes=[3, 3, 3, 3],
        down_padding=1,
        **TINY,
    )
    torch.manual_seed(0)
    ours = build_model(cfg).eval()
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.3, 1.0)
                m.weight.normal_(1, 0.3)
    theirs = build_model(cfg, backend=spconv).eval()
    theirs.load_state_dict(ours.state_dict())
    x = _x()
    with torch.no_grad():
        a = ours(x)
        b = theirs(spconv.SparseConvTensor(x.features, x.indices, x.spatial_shape, 1))
    assert torch.equal(a.indices, b.indices) and a.features.std(0).min() > 1e-2
    torch.testing.assert_close(a.features, b.features, rtol=1e-5, atol=1e-5)


def test_new_options_are_checked_and_defaults_unchanged():
    base = dict(name="largekernel3d_seg", in_channels=3, num_classes=5, **TINY)
    default = build_model(base)
    assert default.down_padding == 0 and all(d.conv.padding == (0, 0, 0) for d in default.down)
    explicit = build_model(dict(base, down_padding=0, dilated_branch=True, dilated_dilation=None))
    assert explicit.encoder[0][0].conv1.dilated.dilation == (2, 2, 2)
    assert set(default.state_dict()) == set(build_model(dict(base, down_padding=1)).state_dict())
    with pytest.raises(ValueError, match="down_padding"):
        build_model(dict(base, down_padding=2))
    with pytest.raises(ValueError, match="dilated_dilation"):
        build_model(dict(base, dilated_dilation=3))  # without the branch


def test_key_names_follow_the_official_tree():
    assert official_seg_path("stem.conv.weight") == "conv0p1s1.weight"
    assert official_seg_path("down.3.bn.running_var") == "bn4.running_var"
    assert official_seg_path("up.0.conv.weight") == "convtr4p16s2.weight"
    assert official_seg_path("up.3.bn.weight") == "bntr7.weight"
    assert official_seg_path("encoder.1.0.downsample.linear.weight") == "block2.0.downsample.0.weight"
    assert official_seg_path("decoder.3.1.bn2.bias") == "block8.1.norm2.bias"
    assert official_seg_path("final.linear.bias") == "final.bias"
    arch = detect_official_seg(_state(("spatialgroupconv", "common", "spatialgroupconv", "common"), (7, 3, 5, 3)))
    assert arch.layers == TINY["layers"] and arch.planes == TINY["planes"] and arch.init_dim == 4
    assert arch.stage_kernel_sizes == (7, 3, 5, 3) and arch.version == "v1"
    cfg = arch.model_config()
    assert cfg["stage_conv_types"] == ["swlk", "plain", "swlk", "plain"] and cfg["num_classes"] == 6


def test_every_key_is_accounted_for():
    state = _state()
    with pytest.raises(ValueError, match="1 checkpoint keys unused.*extra.weight"):
        load_official_checkpoint(dict(state, **{"extra.weight": torch.ones(2)}))
    with pytest.warns(UserWarning, match="unused"):
        conv = convert_official_checkpoint(dict(state, **{"extra.weight": torch.ones(2)}), strict=False)
    assert conv.report.unused == ("extra.weight",)
    short = {k: v for k, v in state.items() if k != "bn2.running_mean"}
    with pytest.raises(ValueError, match="down.1.bn.running_mean"):
        load_official_checkpoint(short)
    with pytest.warns(UserWarning, match="missing"):
        conv = convert_official_checkpoint(short, strict=False)
    assert conv.report.missing == ("down.1.bn.running_mean",)
    with pytest.raises(ValueError, match="not an official LargeKernel3D segmentation checkpoint"):
        load_official_checkpoint({"conv_input.0.weight": torch.ones(16, 3, 3, 3, 4)})


def test_nothing_is_written_when_a_late_tensor_is_wrong():
    state = _state()
    model = build_model(detect_official_seg(state).model_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = dict(state, **{"final.bias": torch.ones(7)})
    with pytest.raises(ValueError, match="final.bias"):
        load_official_seg(model, bad)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="dilated_dilation=3"):  # a model built with the detection dilation
        load_official_seg(build_model(dict(detect_official_seg(state).model_config(), dilated_dilation=None)), state)


def test_det_task_dispatches_to_the_detection_backbone_loader():
    from largekernel3d.models.detection import LargeKernel3DBackbone, VoxelResBackBone8x

    shape = [41, 64, 64]
    torch.manual_seed(0)
    ours = VoxelResBackBone8x(4, shape)
    state = {f"backbone_3d.{k}": v for k, v in ours.state_dict().items()}
    state["dense_head.x.weight"] = torch.ones(1)
    with pytest.raises(ValueError, match="sparse_shape"):
        convert_official_checkpoint(state, task="det")
    conv = convert_official_checkpoint(state, task="det", sparse_shape=shape)
    assert isinstance(conv.model, LargeKernel3DBackbone) and conv.config["conv_types"] == ("plain",) * 4
    assert conv.report.source == "openpcdet" and conv.report.other_parts == 1 and conv.report.unused == ()
    for k, v in conv.model.state_dict().items():
        assert torch.equal(v, ours.state_dict()[k]), k


def test_lk3d_convert_official_writes_a_checkpoint_eval_can_read(tmp_path, capsys):
    from largekernel3d.training.trainer import load_trained_model

    state = _state()
    src, out = tmp_path / "official.pth", tmp_path / "ours.pt"
    torch.save({"state_dict": state}, src)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lk3d(["convert", "official", "--task", "seg", str(src), str(out)]) == 0
    assert "unused 0, missing 0" in capsys.readouterr().out
    direct = load_official_checkpoint(state)
    # load_trained_model builds from the checkpoint's config with the data's 3 input channels
    model, payload = load_trained_model(out)
    assert payload["config"]["model"]["down_padding"] == 1 and len(payload["class_names"]) == 6
    x = _x(1)
    with torch.no_grad():
        torch.testing.assert_close(model(x).features, direct(x).features)
    assert lk3d(["convert", "official", str(tmp_path / "none.pth"), str(out)]) == 2


class _NotATensor:
    """A pickled object that torch's weights-only loader refuses."""


def test_a_pickle_with_objects_names_the_trust_flag_without_terminal_codes(tmp_path):
    from largekernel3d.models.official_seg import read_checkpoint

    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _NotATensor()}, path)
    with pytest.raises(ValueError, match="holds objects other than tensors") as info:
        read_checkpoint(path)
    assert "--trust-pickle" in str(info.value) and "\x1b" not in str(info.value)
    assert set(read_checkpoint(path, weights_only=False)) == {"w"}
