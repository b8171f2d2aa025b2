"""Builders several test modules share: small images with known content, model packages and
networks with known behaviour, a progress recorder."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from OsteoSegLib.model.network import Architecture, build_network
from OsteoSegLib.model.package import ModelPackage, save_model_package
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.progress import Progress


def random_model(width=4, seed=0) -> ModelPackage:
    torch.manual_seed(seed)
    network = build_network(Architecture(2, width))
    torch.nn.init.zeros_(network.head.bias)              # masks neither empty nor full
    for module in network.modules():                     # BatchNorm statistics as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return ModelPackage(network.eval(), {"name": f"random-{seed}", "inputs": ["ct", "pet"]}, None)


class ThresholdNetwork(torch.nn.Module):
    """Logits that reproduce channel 0 thresholded at 0.5: an identity-like path through inference."""

    def forward(self, x):
        return 40.0 * (x[:, :1] - 0.5)


def identity_model(name: str, source: str, inputs=("ct",)) -> ModelPackage:
    card = {"name": name, "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=224).as_dict(), "weights_sha256": "0" * 64,
            "versions": {"osteoseg": "test"}}
    return ModelPackage(ThresholdNetwork(), card, None)


def oblique_ct_with_mask():
    """An oblique, anisotropic CT of 37 x 53 x 7 voxels (not 224-divisible) holding a known mask."""
    mask = np.zeros((7, 53, 37), np.uint8)
    mask[2:5, 10:30, 8:21] = 1
    mask[3, 35:45, 25:33] = 1
    ct = sitk.GetImageFromArray(np.where(mask > 0, 1100.0, -400.0).astype(np.float32))
    ct.SetSpacing((0.9, 1.3, 3.0))
    ct.SetOrigin((-20.0, 15.0, 7.5))
    rotation = sitk.Euler3DTransform((0, 0, 0), 0.2, -0.1, 0.3)
    ct.SetDirection(rotation.GetMatrix())
    return ct, mask


def write_package(folder, source, inputs=("ct", "pet"), size=48, seed=0, name=None):
    """A narrow random model package folder `folder/name` (default name: model-<source>)."""
    torch.manual_seed(seed)
    network = build_network(Architecture(len(inputs), 4))
    name = name or f"model-{source}"
    card = {"name": name, "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=size).as_dict(),
            "architecture": Architecture(len(inputs), 4).as_dict(),
            "versions": {"osteoseg": "test"}}
    return save_model_package(folder / name, network.state_dict(), card)


class Messages(Progress):
    def __init__(self):
        self.texts = []

    def message(self, text):
        self.texts.append(text)


def write(array, path, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path.name


# ---------------------------------------------------------------- synthetic DICOM (pydicom)

DICOM_PET_TAGS = {"weight_kg": 70.0, "dose_bq": 3.7e8, "half_life_s": 6586.2, "injection": "090000",
                  "series_time": "100000"}


def dicom_suv_factor() -> float:
    """SUV per Bq/mL for the tags above: weight / (dose decayed over the hour from injection to scan)."""
    tags = DICOM_PET_TAGS
    return tags["weight_kg"] * 1000.0 / (tags["dose_bq"] * 2 ** (-3600.0 / tags["half_life_s"]))


def _dicom_file(path, sop_class: str, modality: str, uids: dict, extra) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    dataset.Modality, dataset.PatientID, dataset.PatientName = modality, "P1", "Test^Patient"
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = uids["study"], uids["series"]
    dataset.FrameOfReferenceUID = uids["frame"]
    dataset.StudyDate = dataset.SeriesDate = dataset.AcquisitionDate = "20260101"
    extra(dataset)
    dataset.save_as(path, enforce_file_format=True)


def write_dicom_series(folder, image: sitk.Image, modality: str, uids: dict) -> None:
    """An axis-aligned image as a DICOM series: CT stored as HU + 1024 (intercept -1024), PET (SUV) as
    Bq/mL with a slope per slice and the tags of DICOM_PET_TAGS (Units BQML, DecayCorrection START)."""
    folder.mkdir(parents=True, exist_ok=True)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    sop = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.128"
    for k, plane in enumerate(values):
        def fill(dataset, k=k, plane=plane):
            import pydicom

            dataset.Rows, dataset.Columns = plane.shape
            dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
            dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
            dataset.ImagePositionPatient = [f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
            dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            dataset.PixelSpacing = [f"{image.GetSpacing()[1]:.6f}", f"{image.GetSpacing()[0]:.6f}"]
            dataset.SliceThickness, dataset.InstanceNumber = f"{image.GetSpacing()[2]:.6f}", k + 1
            dataset.SeriesTime = dataset.AcquisitionTime = DICOM_PET_TAGS["series_time"]
            if modality == "CT":
                dataset.PixelRepresentation, dataset.RescaleIntercept, dataset.RescaleSlope = 1, "-1024", "1"
                stored = np.round(plane + 1024).astype(np.int16)
            else:
                bq = plane / dicom_suv_factor()
                slope = max(float(bq.max()), 1e-6) / 32000.0
                dataset.PixelRepresentation, dataset.RescaleIntercept = 0, "0"
                dataset.RescaleSlope = f"{slope:.10g}"
                stored = np.round(bq / float(dataset.RescaleSlope)).astype(np.uint16)
                dataset.Units, dataset.DecayCorrection = "BQML", "START"
                dataset.PatientWeight = str(DICOM_PET_TAGS["weight_kg"])
                info = pydicom.Dataset()
                info.RadiopharmaceuticalStartTime = DICOM_PET_TAGS["injection"]
                info.RadionuclideTotalDose = str(DICOM_PET_TAGS["dose_bq"])
                info.RadionuclideHalfLife = str(DICOM_PET_TAGS["half_life_s"])
                dataset.RadiopharmaceuticalInformationSequence = [info]
            dataset.PixelData = stored.tobytes()
        _dicom_file(folder / f"{modality}_{k:03d}.dcm", sop, modality, uids, fill)


def write_rtstruct(path, image: sitk.Image, mask: np.ndarray, uids: dict, roi: str = "GTV") -> None:
    """An RTSTRUCT with one ROI: per slice, the outline of the mask's box there, on `uids["frame"]`."""
    import pydicom

    def fill(dataset):
        frame = pydicom.Dataset()
        frame.FrameOfReferenceUID = uids["frame"]
        dataset.ReferencedFrameOfReferenceSequence = [frame]
        item = pydicom.Dataset()
        item.ROINumber, item.ROIName, item.ReferencedFrameOfReferenceUID = 1, roi, uids["frame"]
        dataset.StructureSetROISequence = [item]
        contours = []
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            rows, columns = np.flatnonzero(mask[k].any(axis=1)), np.flatnonzero(mask[k].any(axis=0))
            corners = [(columns[0] - 0.5, rows[0] - 0.5), (columns[-1] + 0.5, rows[0] - 0.5),
                       (columns[-1] + 0.5, rows[-1] + 0.5), (columns[0] - 0.5, rows[-1] + 0.5)]
            contour = pydicom.Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            points = [image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k))) for i, j in corners]
            contour.ContourData = [f"{v:.4f}" for point in points for v in point]
            contour.NumberOfContourPoints = 4
            contours.append(contour)
        roi_contour = pydicom.Dataset()
        roi_contour.ReferencedROINumber, roi_contour.ContourSequence = 1, contours
        dataset.ROIContourSequence = [roi_contour]
        dataset.SeriesDescription = "CT contours"

    _dicom_file(path, "1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT", uids, fill)


def write_dicom_case(folder, seed: int = 0, frame: str | None = None, structure_frame: str | None = None,
                     graded: bool = False):
    """A small DICOM case (CT, PET, RTSTRUCT on a box lesion): returns (CT HU, PET SUV, mask) arrays.
    The lesion's SUV is 7 throughout, or with `graded` 4 + its column index (10 to 14, mean 12)."""
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    hu = np.full((6, 24, 20), -1000.0)
    hu[:, 4:20, 3:17] = 40.0 + rng.normal(0, 5, (6, 16, 14)).round()
    mask = np.zeros(hu.shape, np.uint8)
    mask[2:5, 9:14, 6:11] = 1
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((2.0, 1.5, 3.0))
    ct.SetOrigin((-20.0, 10.0, 5.0))
    columns = np.arange(hu.shape[2])[None, None, :]
    suv = np.where(hu > -500, 1.0, 0.1) + mask * ((3.0 + columns) if graded else 6.0)
    pet = sitk.GetImageFromArray(suv)
    pet.CopyInformation(ct)
    study, frame = generate_uid(), frame or generate_uid()
    write_dicom_series(folder / "CT", ct, "CT", {"study": study, "series": generate_uid(), "frame": frame})
    write_dicom_series(folder / "PT", pet, "PT", {"study": study, "series": generate_uid(), "frame": frame})
    write_rtstruct(folder / "RS.dcm", ct, mask, {"study": study, "series": generate_uid(),
                                                 "frame": structure_frame or frame})
    return hu, suv, mask


def lesion_patient(seed: int = 0):
    """A small CT + PET (4 mm PET grid) with a bone whose cortex a hot lesion destroyed on one side,
    warm soft tissue (edema) beside it, and a hot spot far from it (a PET-only confounder); the CT is
    2 x 2 x 3 mm, 32 x 28 x 12. Returns the CT and PET images, the rough mask (lesion and edema grown
    by a voxel in-plane) and the regions by name, as (z, y, x) arrays on the CT grid."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    z, y, x = np.indices((12, 28, 32))
    radius = np.hypot(y - 14, x - 15)
    body = np.hypot((y - 14) / 13, (x - 15) / 15) <= 1
    cortex, marrow = (radius <= 6) & (radius > 4), radius <= 4
    lesion = (np.hypot(y - 14, x - 20) <= 3.5) & (cortex | marrow) & (z >= 4) & (z <= 7)
    edema = (ndimage.distance_transform_edt(~lesion, sampling=(9, 1, 1)) <= 3) & body & ~cortex & ~marrow & (x > 20)
    confounder = (np.hypot(y - 14, x - 4) <= 2.5) & (z >= 9)
    hu = np.where(body, 40.0, -1000.0) + np.where(cortex, 1160.0, 0) + np.where(marrow, 260.0, 0)
    hu = np.where(lesion, 80.0, hu) + rng.normal(0, 10, hu.shape)
    suv = np.where(body, 0.8, 0.05) + np.where(marrow, 0.7, 0) + np.where(edema, 2.2, 0)
    suv = np.where(lesion, 7.0, np.where(confounder, 5.0, suv))
    ct = sitk.GetImageFromArray(hu.astype(np.float32))
    ct.SetSpacing((2.0, 2.0, 3.0))
    ct.SetOrigin((-30.0, -20.0, 5.0))
    fine = sitk.GetImageFromArray(ndimage.gaussian_filter(suv, (0.6, 1.0, 1.0)).astype(np.float32))
    fine.CopyInformation(ct)
    grid = sitk.Image((16, 14, 9), sitk.sitkFloat32)
    grid.SetSpacing((4.0, 4.0, 4.0))
    grid.SetOrigin((-32.0, -22.0, 3.0))
    pet = sitk.Resample(fine, grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    rough = ndimage.binary_dilation(lesion | edema, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]]))
    return ct, pet, rough, {"lesion": lesion, "edema": edema, "confounder": confounder, "bone": cortex | marrow,
                            "body": body}
