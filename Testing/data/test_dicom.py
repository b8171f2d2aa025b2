"""Choosing a DICOM series."""

from __future__ import annotations

import pytest
from OsteoSegLib.data.dicom import Series, choose_series
from OsteoSegLib.errors import OsteoSegError


def test_several_series_without_a_choice_is_an_error(tmp_path):
    series = [Series("1.2.3", "CT", "arterial", "f"), Series("1.2.4", "CT", "venous", "f")]
    with pytest.raises(OsteoSegError, match=r"2 CT series here, choose one by its SeriesInstanceUID: .*1\.2\.3.*1\.2\.4"
                       ):
        choose_series(series, "CT", tmp_path, case="P9")
    assert choose_series(series, "CT", tmp_path, uid="1.2.4").description == "venous"
    with pytest.raises(OsteoSegError, match="no a PT series here"):
        choose_series(series, "PT", tmp_path)
