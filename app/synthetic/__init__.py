"""Synthetic multiphase liver CT: phantom studies with a documented outcome model, written as
real DICOM. numpy + pydicom; no Qt, no torch."""
