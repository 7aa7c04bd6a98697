"""Config values of the detector: a bad value is a ValueError naming its key, whatever is wrong with it."""

import numpy as np
import pytest

from largekernel3d.models._config_checks import config_positive_int
from largekernel3d.models.detection.centerpoint import _max_voxels


def test_config_positive_int_accepts_ints():
    assert config_positive_int(3, "max_voxels") == 3
    value = config_positive_int(np.int64(7), "max_voxels")
    assert value == 7 and type(value) is int


@pytest.mark.parametrize(
    "bad, message",
    [
        (0, "must be >= 1, got 0"),
        (-2, "must be >= 1, got -2"),
        (1.5, "must be a positive int, got 1.5"),
        (True, "must be a positive int, got True"),
        ("8", "must be a positive int, got '8'"),
        (None, "must be a positive int, got None"),
    ],
)
def test_config_positive_int_raises_value_error_naming_the_key(bad, message):
    with pytest.raises(ValueError, match=f"out_stride {message}"):
        config_positive_int(bad, "out_stride")


def test_max_voxels_names_the_bad_entry():
    assert _max_voxels(5) == {"train": 5, "test": 5}
    assert _max_voxels({"train": 4, "test": np.int32(6)}) == {"train": 4, "test": 6}
    with pytest.raises(ValueError, match=r"max_voxels\['test'\] must be a positive int, got 2.5"):
        _max_voxels([3, 2.5])
    with pytest.raises(ValueError, match=r"max_voxels\['train'\] must be >= 1, got 0"):
        _max_voxels([0, 2])
