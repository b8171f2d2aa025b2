"""PET units: the factor that turns a PET series into SUV normalised by body weight (SUVbw).

SUVbw = activity concentration [Bq/mL] x body weight [g] / injected dose decayed to the image's
reference time [Bq], taking 1 mL of tissue as 1 g. Units GML are already SUVbw. Anything else
(CNTS, PROPCNTS, ...) is refused rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from ..errors import OsteoSegError


@dataclass(frozen=True)
class SuvConversion:
    """How a PET series was turned into SUVbw (recorded next to results)."""

    factor: float                       # multiply the series' values by this
    units: str                          # the series' Units (0054,1001)
    weight_kg: float | None = None
    injected_dose_bq: float | None = None
    half_life_s: float | None = None
    decay_correction: str | None = None
    injection_time: str | None = None
    reference_time: str | None = None
    decay_factor: float | None = None   # fraction of the dose left at the reference time

    def as_dict(self) -> dict:
        return asdict(self)


def _datetime(date: str | None, time: str | None) -> datetime | None:
    """A DICOM DA + TM pair (TM may lack seconds or carry fractions)."""
    if not date or not time:
        return None
    time = str(time).strip()
    whole, _, fraction = time.partition(".")
    whole = whole.ljust(6, "0")
    stamp = datetime.strptime(f"{str(date).strip()}{whole}", "%Y%m%d%H%M%S")
    return stamp + timedelta(microseconds=int((fraction + "000000")[:6])) if fraction else stamp


def _injection_time(dataset, reference: datetime) -> datetime:
    """Injection start from RadiopharmaceuticalStartDateTime, or the series date with
    RadiopharmaceuticalStartTime (the day before when that would fall after the scan)."""
    info = dataset.RadiopharmaceuticalInformationSequence[0]
    full = info.get("RadiopharmaceuticalStartDateTime")
    if full:
        text = str(full).split("+")[0].split("-")[0]
        return _datetime(text[:8], text[8:])
    start = info.get("RadiopharmaceuticalStartTime")
    if not start:
        raise OsteoSegError("PET has no injection time (RadiopharmaceuticalStartTime)")
    injection = _datetime(reference.strftime("%Y%m%d"), str(start))
    return injection - timedelta(days=1) if injection > reference else injection


def _reference_time(dataset) -> datetime:
    """The time the images are decay-corrected to when DecayCorrection is START: the series
    start, or the earliest acquisition when a post-processing step moved the series time later."""
    series = _datetime(dataset.get("SeriesDate"), dataset.get("SeriesTime"))
    acquisition = _datetime(dataset.get("AcquisitionDate"), dataset.get("AcquisitionTime"))
    candidates = [t for t in (series, acquisition) if t is not None]
    if not candidates:
        raise OsteoSegError("PET has no series or acquisition date and time")
    return min(candidates)


def _positive(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise OsteoSegError(f"PET in Bq/mL needs a positive {name} to compute SUV, found {value!r}")
    return number


def suv_conversion(dataset) -> SuvConversion:
    """The SUVbw conversion for a PET series, from one of its DICOM headers (pydicom dataset)."""
    units = str(dataset.get("Units", "")).strip().upper()
    if units == "GML":
        return SuvConversion(factor=1.0, units=units)
    if units != "BQML":
        raise OsteoSegError(f"PET units {units or '(missing)'!r} cannot be converted to SUV: "
                            "only BQML (Bq/mL) and GML (already SUVbw) are supported")
    if "RadiopharmaceuticalInformationSequence" not in dataset or \
            not dataset.RadiopharmaceuticalInformationSequence:
        raise OsteoSegError("PET in Bq/mL has no RadiopharmaceuticalInformationSequence (dose, half-life)")
    info = dataset.RadiopharmaceuticalInformationSequence[0]
    weight = _positive(dataset.get("PatientWeight"), "PatientWeight (kg)")
    dose = _positive(info.get("RadionuclideTotalDose"), "RadionuclideTotalDose (Bq)")
    half_life = _positive(info.get("RadionuclideHalfLife"), "RadionuclideHalfLife (s)")
    correction = str(dataset.get("DecayCorrection", "")).strip().upper()
    if correction == "ADMIN":          # already decay-corrected to the injection time
        decay, injection, reference = 1.0, None, None
    elif correction == "START":
        reference = _reference_time(dataset)
        injection = _injection_time(dataset, reference)
        elapsed = (reference - injection).total_seconds()
        if elapsed < 0:
            raise OsteoSegError(f"PET injection time {injection} is after the scan start {reference}")
        decay = math.pow(2.0, -elapsed / half_life)
    else:
        raise OsteoSegError(f"PET DecayCorrection {correction or '(missing)'!r} is not supported "
                            "(START or ADMIN)")
    return SuvConversion(
        factor=weight * 1000.0 / (dose * decay), units=units, weight_kg=weight, injected_dose_bq=dose,
        half_life_s=half_life, decay_correction=correction,
        injection_time=injection.isoformat() if injection else None,
        reference_time=reference.isoformat() if reference else None, decay_factor=decay)
