"""Data: cohorts (description, importers from folders and DICOM, validation, summary), image files,
DICOM series with SUV, RTSTRUCT and DICOM SEG contours, content fingerprints, patient-wise splits, and
the overview figure of a case. Imports only the ground floor."""
