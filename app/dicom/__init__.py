"""DICOM import: folder scan, series grouping, geometry checks, volumes, phase classification
and study assembly. pydicom + numpy only; no Qt, no torch."""
