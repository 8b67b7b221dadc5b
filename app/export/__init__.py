"""Results as DICOM objects the hospital's PACS keeps (Qt-free).

A prediction otherwise lives only in the local register, a PDF and PNG files. This package turns
one prediction into objects a PACS stores next to the source images:

- a Comprehensive SR (:mod:`app.export.sr`) in the patient's study with the label, the vote
  split, the mean probability, the tie rule, the model's identity, device, software version,
  the intended-use notice and references to the three source series;
- Secondary Capture images (:mod:`app.export.capture`) of chosen slice levels, the three phases
  side by side with the Grad-CAM overlay, a colour bar and burned-in text (flagged as such);
- :func:`app.export.writer.export_dicom` writes both to a folder the user chose.

Built with ``highdicom``, which fills the patient/study modules from the source images and
enforces the IODs' rules, so the objects validate (``dciodvfy``) without hand-made headers.
"""
