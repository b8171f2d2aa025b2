"""SUVbw from DICOM tags: the arithmetic and every refusal."""

from __future__ import annotations

import pydicom
import pytest
from OsteoSegLib.data.suv import suv_conversion
from OsteoSegLib.errors import OsteoSegError


def pet_header(**changes):
    header = pydicom.Dataset()
    header.Units, header.DecayCorrection, header.PatientWeight = "BQML", "START", "70"
    header.SeriesDate, header.SeriesTime = "20260101", "100000"
    info = pydicom.Dataset()
    info.RadiopharmaceuticalStartTime, info.RadionuclideTotalDose = "090000", "3.7e8"
    info.RadionuclideHalfLife = "6586.2"
    header.RadiopharmaceuticalInformationSequence = [info]
    for key, value in changes.items():
        setattr(header, key, value)
    return header


def test_suv_factor_from_tags():
    conversion = suv_conversion(pet_header())
    assert conversion.factor == pytest.approx(70000 / (3.7e8 * 2 ** (-3600 / 6586.2)), rel=1e-12)
    assert suv_conversion(pet_header(DecayCorrection="ADMIN")).factor == pytest.approx(70000 / 3.7e8)
    assert suv_conversion(pet_header(Units="GML")).factor == 1.0


def test_injection_before_midnight_scan_after():
    header = pet_header(SeriesTime="003000")
    header.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "233000"
    assert suv_conversion(header).decay_factor == pytest.approx(2 ** (-3600 / 6586.2))


@pytest.mark.parametrize("changes, message", [
    (dict(Units="CNTS"), "'CNTS' cannot be converted to SUV"),
    (dict(DecayCorrection="NONE"), "DecayCorrection 'NONE' is not supported"),
    (dict(PatientWeight="0"), "positive PatientWeight"),
])
def test_unknown_units_and_missing_tags_are_errors(changes, message):
    with pytest.raises(OsteoSegError, match=message):
        suv_conversion(pet_header(**changes))
