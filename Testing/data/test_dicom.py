"""Choosing a DICOM series."""

from __future__ import annotations

import pytest
from OsteoSegLib.data.dicom import Series, choose_series
from OsteoSegLib.errors import OsteoSegError


def test_several_series_without_a_choice_is_an_error(tmp_path):
    series = [Series("1.2.3", "CT", "arterial", "f"), Series("1.2.4", "CT", "venous", "f")]
    listing = r"2 CT series here; choose one with --series and its SeriesInstanceUID: .*1\.2\.3.*1\.2\.4"
    with pytest.raises(OsteoSegError, match=listing):
        choose_series(series, "CT", tmp_path, case="P9")
    assert choose_series(series, "CT", tmp_path, uid="1.2.4").description == "venous"
    assert choose_series(series, "CT", tmp_path, uids=["9.9", "1.2.3"]).description == "arterial"
    assert choose_series(series + [Series("2.1", "PT", "pet", "f")], "PT", tmp_path, uids=["1.2.3"]).uid == "2.1"
    with pytest.raises(OsteoSegError, match="no PT series here"):
        choose_series(series, "PT", tmp_path)
