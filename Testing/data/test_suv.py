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
    mouse = suv_conversion(pet_header(PatientWeight="0.025"))           # small-animal PET: under 1 kg is valid
    assert mouse.factor == pytest.approx(25 / (3.7e8 * 2 ** (-3600 / 6586.2)), rel=1e-12)


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


MINUTE_DECAY = 2 ** (-60 / 6586.2)


@pytest.mark.filterwarnings("ignore:Invalid value for VR TM")   # 7 fraction digits: pydicom warns, we truncate
def test_time_with_fractions_and_without_seconds_is_read_to_the_microsecond():
    # Injection 09:00:00.25, scan at 09:01 written without seconds: 59.75 s elapsed.
    header = pet_header(SeriesTime="0901")
    header.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "090000.25"
    conversion = suv_conversion(header)
    assert conversion.injection_time == "2026-01-01T09:00:00.250000"
    assert conversion.reference_time == "2026-01-01T09:01:00"
    assert conversion.decay_factor == pytest.approx(2 ** (-59.75 / 6586.2), rel=1e-12)
    header.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "090000.1234567"
    assert suv_conversion(header).injection_time == "2026-01-01T09:00:00.123456"   # to the microsecond


def test_injection_datetime_wins_over_time_and_may_carry_a_time_zone():
    header = pet_header(SeriesTime="100000")
    info = header.RadiopharmaceuticalInformationSequence[0]
    info.RadiopharmaceuticalStartTime = "050000"                       # ignored when the datetime is there
    info.RadiopharmaceuticalStartDateTime = "20260101095900.5+0100"
    conversion = suv_conversion(header)
    assert conversion.injection_time == "2026-01-01T09:59:00.500000"
    assert conversion.decay_factor == pytest.approx(2 ** (-59.5 / 6586.2), rel=1e-12)
    info.RadiopharmaceuticalStartDateTime = "20260101095900-0500"
    assert suv_conversion(header).injection_time == "2026-01-01T09:59:00"


def test_the_reference_is_the_earlier_of_series_and_acquisition_start():
    earlier = pet_header(SeriesTime="091000", AcquisitionDate="20260101", AcquisitionTime="090100")
    assert suv_conversion(earlier).reference_time == "2026-01-01T09:01:00"
    assert suv_conversion(earlier).decay_factor == pytest.approx(MINUTE_DECAY, rel=1e-12)
    later = pet_header(SeriesTime="090100", AcquisitionDate="20260101", AcquisitionTime="093000")
    assert suv_conversion(later).reference_time == "2026-01-01T09:01:00"
    only_acquisition = pet_header(AcquisitionDate="20260101", AcquisitionTime="090100")
    del only_acquisition.SeriesDate, only_acquisition.SeriesTime
    assert suv_conversion(only_acquisition).reference_time == "2026-01-01T09:01:00"


def test_an_injection_time_equal_to_the_scan_start_means_no_decay_and_not_the_day_before():
    header = pet_header(SeriesTime="090000")
    conversion = suv_conversion(header)
    assert conversion.decay_factor == 1.0 and conversion.injection_time == "2026-01-01T09:00:00"
    assert conversion.factor == pytest.approx(70000 / 3.7e8, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")   # padded lower case, as some scanners write it
def test_what_the_conversion_records():
    conversion = suv_conversion(pet_header(PatientWeight="82.5"))
    assert conversion.as_dict() == {
        "factor": pytest.approx(82500 / (3.7e8 * 2 ** (-3600 / 6586.2)), rel=1e-12), "units": "BQML",
        "weight_kg": 82.5, "injected_dose_bq": 3.7e8, "half_life_s": 6586.2, "decay_correction": "START",
        "injection_time": "2026-01-01T09:00:00", "reference_time": "2026-01-01T10:00:00",
        "decay_factor": pytest.approx(2 ** (-3600 / 6586.2), rel=1e-12)}
    admin = suv_conversion(pet_header(DecayCorrection=" admin "))
    assert (admin.decay_factor, admin.injection_time, admin.reference_time) == (1.0, None, None)
    assert suv_conversion(pet_header(Units=" gml ")).as_dict() == {
        "factor": 1.0, "units": "GML", "weight_kg": None, "injected_dose_bq": None, "half_life_s": None,
        "decay_correction": None, "injection_time": None, "reference_time": None, "decay_factor": None}


def without(header, *names, info=False):
    target = header.RadiopharmaceuticalInformationSequence[0] if info else header
    for name in names:
        delattr(target, name)
    return header


@pytest.mark.parametrize("make, message", [
    (lambda: without(pet_header(), "Units"), r"^PET units '\(missing\)' cannot be converted to SUV: only BQML "
                                             r"\(Bq/mL\) and GML \(already SUVbw\) are supported$"),
    (lambda: without(pet_header(), "DecayCorrection"), r"^PET DecayCorrection '\(missing\)' is not supported "
                                                       r"\(START or ADMIN\)$"),
    (lambda: without(pet_header(), "RadiopharmaceuticalInformationSequence"),
     r"^PET in Bq/mL has no RadiopharmaceuticalInformationSequence \(dose, half-life\)$"),
    (lambda: pet_header(RadiopharmaceuticalInformationSequence=[]),
     r"^PET in Bq/mL has no RadiopharmaceuticalInformationSequence"),
    (lambda: without(pet_header(), "PatientWeight"),
     r"^PET in Bq/mL needs a positive PatientWeight \(kg\) to compute SUV, found None$"),
    (lambda: pet_header(PatientWeight="-70"), r"positive PatientWeight \(kg\) to compute SUV, found '-70'"),
    (lambda: without(pet_header(), "RadionuclideTotalDose", info=True),
     r"^PET in Bq/mL needs a positive RadionuclideTotalDose \(Bq\) to compute SUV, found None$"),
    (lambda: without(pet_header(), "RadionuclideHalfLife", info=True),
     r"^PET in Bq/mL needs a positive RadionuclideHalfLife \(s\) to compute SUV, found None$"),
    (lambda: without(pet_header(), "RadiopharmaceuticalStartTime", info=True),
     r"^PET has no injection time \(RadiopharmaceuticalStartTime\)$"),
    (lambda: without(pet_header(), "SeriesDate"), r"^PET has no series or acquisition date and time$"),
    (lambda: without(pet_header(), "SeriesTime"), r"^PET has no series or acquisition date and time$"),
])
def test_every_missing_or_bad_tag_is_named(make, message):
    with pytest.raises(OsteoSegError, match=message):
        suv_conversion(make())


def test_an_injection_datetime_after_the_scan_is_refused():
    header = pet_header()
    header.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20260101100001"
    with pytest.raises(OsteoSegError, match=r"^PET injection time 2026-01-01 10:00:01 is after the scan start "
                                            r"2026-01-01 10:00:00$"):
        suv_conversion(header)
