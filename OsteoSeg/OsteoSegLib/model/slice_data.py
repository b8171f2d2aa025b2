"""From a cohort to network inputs: each case's PET and labels on its CT grid, preprocessed, cut
into axial slices at the training size. Lesion-free slices are dropped for training only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..data.cohort import TRANSFORM_KEY, Case, Cohort
from ..data.io import read_image
from ..errors import OsteoSegError
from ..imaging import resample_onto
from .preprocess import CHANNEL_ORDER, PreprocessSettings, input_channels, to_training_size

TRUTH = "truth"


@dataclass
class PatientVolumes:
    """One case on its CT grid: network channels (z, C, y, x) in [0, 1], CT in HU, PET in SUV,
    labels 0/1, and the CT image itself (the geometry predictions are written on)."""

    case_id: str
    channels: np.ndarray
    ct_hu: np.ndarray
    pet_suv: np.ndarray
    labels: dict[str, np.ndarray]
    ct: sitk.Image

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(reversed(self.ct.GetSpacing()))


@dataclass
class SliceSet:
    """Training slices: images (N, C, S, S) float32, masks (N, 1, S, S) uint8, the case of each slice."""

    images: np.ndarray
    masks: np.ndarray
    case_ids: list[str]

    def __len__(self) -> int:
        return len(self.case_ids)


def parse_inputs(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """'ct+pet' / 'ct' / 'pet' (or a tuple) -> the inputs in channel order; unknown names are an error."""
    names = tuple(part.strip().lower() for part in (text.split("+") if isinstance(text, str) else text) if part.strip())
    unknown = [name for name in names if name not in CHANNEL_ORDER]
    if not names or unknown or len(set(names)) != len(names):
        raise OsteoSegError(f"inputs {text!r} are not valid: use 'ct', 'pet' or 'ct+pet'")
    return tuple(name for name in CHANNEL_ORDER if name in names)


def check_label_source(cohort: Cohort, case_ids, source: str) -> None:
    """Every case used must carry the label source, or training would silently use fewer patients."""
    missing = [case_id for case_id in sorted(case_ids) if source not in cohort.case(case_id).labels]
    if missing:
        known = ", ".join(cohort.label_sources()) or "none"
        raise OsteoSegError(f"label source {source!r} is missing from {len(missing)} case(s): "
                            f"{', '.join(missing)} (sources in this cohort: {known})", path=cohort.path("cohort.json"))


def recorded_transform(cohort: Cohort, case: Case) -> sitk.Transform | None:
    """The case's recorded CT-to-PET transform, or None (shared frame of reference)."""
    if not case.metadata.get(TRANSFORM_KEY):
        return None
    path = cohort.path(case.metadata[TRANSFORM_KEY])
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError as error:
        raise OsteoSegError(f"transform unreadable ({str(error).strip().splitlines()[-1]})",
                            case=case.case_id, path=path) from None


def pet_on_ct(cohort: Cohort, case: Case, ct: sitk.Image) -> sitk.Image:
    """The case's PET on its CT grid: through the case's recorded CT-to-PET transform when it has one,
    else by resampling in the shared frame of reference (combined PET/CT)."""
    pet = read_image(cohort.path(case.pet), case=case.case_id)
    return resample_onto(pet, ct, transform=recorded_transform(cohort, case))


def load_patient(cohort: Cohort, case_id: str, inputs: tuple[str, ...], sources=(),
                 settings: PreprocessSettings | None = None, *, with_truth: bool = False) -> PatientVolumes:
    """Read, align and normalise one case; `sources` names the label masks to bring along (and
    `with_truth` the phantom's hidden truth, as labels["truth"])."""
    settings = settings or PreprocessSettings()
    case = cohort.case(case_id)
    ct = read_image(cohort.path(case.ct), case=case_id)
    pet = sitk.GetArrayFromImage(pet_on_ct(cohort, case, ct)).astype(np.float32)
    ct_hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    files = {source: case.labels[source] for source in sources}
    if with_truth and case.truth:
        files[TRUTH] = case.truth
    labels = {source: mask_on_grid(cohort.path(file), ct, case_id) for source, file in files.items()}
    channels = input_channels(ct_hu if "ct" in inputs else None, pet if "pet" in inputs else None, inputs, settings)
    return PatientVolumes(case_id, channels, ct_hu, pet, labels, ct)


def mask_on_grid(path, ct: sitk.Image, case_id: str) -> np.ndarray:
    """A label file as a 0/1 array on the CT grid (nearest neighbour in physical space)."""
    label = resample_onto(read_image(path, case=case_id), ct, interpolator="nearest")
    return (sitk.GetArrayViewFromImage(label) > 0).astype(np.uint8)


def patient_slices(patient: PatientVolumes, source: str, size: int, *, lesion_only: bool = True) -> SliceSet:
    """The patient's axial slices at size x size; with `lesion_only`, just those holding lesion."""
    label = patient.labels[source]
    keep = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1)) if lesion_only else np.arange(label.shape[0])
    images = to_training_size(patient.channels[keep], size, order=1)
    masks = (to_training_size(label[keep, None].astype(np.float32), size, order=1) > 0.5).astype(np.uint8)
    return SliceSet(images, masks, [patient.case_id] * len(keep))


def join_slices(parts: list[SliceSet], channels: int, size: int) -> SliceSet:
    """One SliceSet from several patients' (an empty list gives an empty, correctly shaped set)."""
    if not parts:
        return SliceSet(np.zeros((0, channels, size, size), np.float32), np.zeros((0, 1, size, size), np.uint8), [])
    return SliceSet(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                    [case_id for p in parts for case_id in p.case_ids])
