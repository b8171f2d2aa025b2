"""Label proposals: from CT, PET and the expert's rough input to a proposed Label A and Label B, each
lesion with a confidence. The work happens in a crop around the rough input (clusters, then the
refinement of each philosophy); the proposals come back on the whole CT grid."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import OsteoSegError
from ..imaging import BONE_WINDOW_HU, body_mask, padded_box
from .clustering import TRIVIAL_GROUPINGS, ClusteringSettings, cluster_crop, trivial_clusters
from .refinement import RefinementSettings, refine
from .rough_input import RoughInput, check_rough_input, pet_on_ct_grid

__all__ = ["LesionConfidence", "Proposal", "ProposalSettings", "propose", "propose_arrays"]


@dataclass(frozen=True)
class ProposalSettings:
    """Clustering, refinement, and the crop they work in."""

    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)
    refinement: RefinementSettings = field(default_factory=RefinementSettings)
    margin_mm: float = 15.0         # context around the rough input (the surroundings uptake is measured in)
    max_voxels: int = 150_000       # a larger crop is clustered on voxels binned in-plane (never resized to a size)
    grouping: str = "network"       # or a baseline to compare the clustering with: "voxel", "suv-bins"

    def __post_init__(self):
        if self.grouping not in ("network", *TRIVIAL_GROUPINGS):
            raise ValueError(f"unknown grouping {self.grouping!r}; one of network, {', '.join(TRIVIAL_GROUPINGS)}")


@dataclass
class LesionConfidence:
    """One lesion of Proposed A (a 3D connected part) and how far to trust it (each part 0..1)."""

    lesion: int
    voxels: int
    volume_ml: float
    suv_max: float
    contrast: float       # 1 - (mean SUV just around it) / (mean SUV inside)
    cluster_edge: float   # share of its edge inside the crop (a lesion cut by the crop's border goes on beyond it)
    confidence: float     # geometric mean of the two


@dataclass
class Proposal:
    """Proposed A and B (uint8, (z, y, x) on the CT grid), per-lesion confidence, and what was done."""

    label_a: np.ndarray
    label_b: np.ndarray
    lesions: list[LesionConfidence]
    crop: tuple[slice, ...]
    clusters: int
    iterations: int
    binning: int
    background_suv: float
    peak_suv: float
    seconds: float

    def summary(self) -> dict:
        """A JSON-ready record (volumes in voxels, crop as [start, stop) per z, y, x)."""
        return {"voxels": {"A": int(self.label_a.sum()), "B": int(self.label_b.sum())},
                "lesions": [asdict(lesion) for lesion in self.lesions],
                "crop_zyx": [[s.start, s.stop] for s in self.crop], "clusters": self.clusters,
                "iterations": self.iterations, "in_plane_binning": self.binning,
                "background_suv": round(self.background_suv, 3), "peak_suv": round(self.peak_suv, 3),
                "seconds": round(self.seconds, 2)}


def network_channels(ct_hu: np.ndarray, suv: np.ndarray) -> np.ndarray:
    """CT in the bone window and PET, each min-max scaled to [0, 1] over the crop."""
    ct = (np.clip(ct_hu, *BONE_WINDOW_HU) - BONE_WINDOW_HU[0]) / (BONE_WINDOW_HU[1] - BONE_WINDOW_HU[0])
    pet = suv - suv.min()
    return np.stack([ct, pet / max(float(pet.max()), 1e-8)]).astype(np.float32)


def binned(channels: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` in-plane blocks (edge blocks padded by repetition)."""
    if factor == 1:
        return channels
    _, nz, ny, nx = channels.shape
    py, px = -ny % factor, -nx % factor
    padded = np.pad(channels, ((0, 0), (0, 0), (0, py), (0, px)), mode="edge")
    return padded.reshape(len(channels), nz, (ny + py) // factor, factor, (nx + px) // factor, factor).mean(axis=(3, 5))


def unbinned(labels: np.ndarray, factor: int, shape) -> np.ndarray:
    """Block labels back onto the crop's voxels."""
    return labels.repeat(factor, axis=1).repeat(factor, axis=2)[:, : shape[1], : shape[2]]


def lesion_confidences(label_a: np.ndarray, suv: np.ndarray, body: np.ndarray, spacing_zyx) -> list[LesionConfidence]:
    """Per lesion of A: uptake contrast with a two-voxel shell around it, and how much of its edge lies
    inside the crop (where the crop's border cuts it, its extent is a guess)."""
    parts, count = ndimage.label(label_a, structure=np.ones((3, 3, 3), bool))
    lesions = []
    for number in range(1, count + 1):
        lesion = parts == number
        shell = ndimage.binary_dilation(lesion, iterations=2) & ~label_a & body
        inside = float(suv[lesion].mean())
        contrast = float(np.clip(1 - suv[shell].mean() / inside, 0, 1)) if shell.any() and inside > 0 else 0.0
        padded = np.pad(lesion, 1)
        edge = ndimage.binary_dilation(padded) & ~padded
        cluster_edge = float(edge[1:-1, 1:-1, 1:-1].sum()) / max(int(edge.sum()), 1)
        lesions.append(LesionConfidence(number, int(lesion.sum()),
                                        round(float(lesion.sum() * np.prod(spacing_zyx)) / 1000.0, 3),
                                        round(float(suv[lesion].max()), 2), round(contrast, 3),
                                        round(cluster_edge, 3), round(float(np.sqrt(contrast * cluster_edge)), 3)))
    return lesions


def crop_clusters(ct_crop: np.ndarray, suv_crop: np.ndarray, settings: ProposalSettings):
    """The crop's clusters (on its voxels) and the in-plane binning they were found at."""
    channels = network_channels(ct_crop, suv_crop)
    if settings.grouping != "network":
        return trivial_clusters(channels, settings.grouping), 1
    factor = max(1, int(np.ceil(np.sqrt(ct_crop.size / settings.max_voxels))))
    clusters = cluster_crop(binned(channels, factor), settings.clustering)
    clusters.labels = unbinned(clusters.labels, factor, ct_crop.shape)
    return clusters, factor


def propose_arrays(ct_hu: np.ndarray, suv: np.ndarray, rough: np.ndarray, spacing_zyx,
                   settings: ProposalSettings = ProposalSettings()) -> Proposal:
    """The proposals from arrays on one grid ((z, y, x) CT in HU, PET in SUV, rough region)."""
    started = time.perf_counter()
    crop = padded_box(rough, settings.margin_mm, spacing_zyx)
    ct_crop, suv_crop = np.asarray(ct_hu[crop], np.float32), np.asarray(suv[crop], np.float32)
    body, rough_crop = body_mask(ct_crop), rough[crop]
    clusters, factor = crop_clusters(ct_crop, suv_crop, settings)
    refined = refine(clusters.labels, ct_crop, suv_crop, rough_crop, body, spacing_zyx, settings.refinement)
    label_a, label_b = np.zeros(rough.shape, np.uint8), np.zeros(rough.shape, np.uint8)
    label_a[crop], label_b[crop] = refined.label_a, refined.label_b
    lesions = lesion_confidences(refined.label_a, suv_crop, body, spacing_zyx)
    return Proposal(label_a, label_b, lesions, crop, clusters.count, clusters.iterations, factor,
                    refined.background_suv, refined.peak_suv, time.perf_counter() - started)


def propose(ct: sitk.Image, pet: sitk.Image | None, rough: RoughInput, *, transform: sitk.Transform | None = None,
            settings: ProposalSettings = ProposalSettings(), case: str | None = None, pet_path=None) -> Proposal:
    """Proposed A and B for one patient: the PET is resampled onto the CT grid (through `transform`,
    CT to PET, when given). Refused with one message: no PET, a PET that is not SUV or misses the CT,
    a rough input that is empty or outside the body."""
    if ct is None:
        raise OsteoSegError("label proposals need the CT (the reference grid)", case=case)
    ct_hu = sitk.GetArrayFromImage(ct)
    check_rough_input(rough, ct_hu, case=case)
    suv = pet_on_ct_grid(ct, pet, transform, case=case, path=pet_path)
    spacing_zyx = tuple(reversed(ct.GetSpacing()))
    return propose_arrays(ct_hu, suv, rough.region, spacing_zyx, settings)

