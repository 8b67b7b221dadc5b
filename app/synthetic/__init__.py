"""Synthetic multiphase liver CT: phantom studies with a documented outcome model, written as
real DICOM. numpy + pydicom + OpenCV; no Qt, no torch.

The real cohort is private, so everything in the project is developed, demonstrated, tested and
benchmarked on these phantoms. Modules, from the bottom up:

- :mod:`~app.synthetic.options` — :class:`StudyOptions`, every knob of ``demo-data``;
- :mod:`~app.synthetic.rng` — independent seeded streams per patient and purpose;
- :mod:`~app.synthetic.outcome` — latent tumour features, the logistic response model (its
  coefficients are documented there and written into every ``truth.json``), RECIST, rank AUC;
- :mod:`~app.synthetic.anatomy` — body, organs and vessels in mm (DICOM LPS) and their HU per
  phase, with per-patient variation of size, shape, timing and enhancement;
- :mod:`~app.synthetic.lesions` — HCC lesions (APHE, washout, capsule, necrosis, mosaic,
  iodised oil) and portal-vein tumour thrombus;
- :mod:`~app.synthetic.render` — per-slice rasterisation of the analytic shapes, noise, blur;
- :mod:`~app.synthetic.conventions` — vendor and language habits of series descriptions;
- :mod:`~app.synthetic.writer` — deterministic UIDs, stored values, Part 10 files;
- :mod:`~app.synthetic.labelmaps` — the renderer's tissue labels per axial series
  (``demo-data --label-maps``) and their alignment with the network input;
- :mod:`~app.synthetic.study` — one patient: draw, render, write, ``truth.json``;
- :mod:`~app.synthetic.cohort` — ``generate_cohort`` (``labels.csv``) and ``sample_patients``;
- :mod:`~app.synthetic.demo` — ``ensure_demo_study`` for the application's first start.

Public entry points: :func:`app.synthetic.cohort.generate_cohort`,
:func:`app.synthetic.cohort.sample_patients`, :func:`app.synthetic.study.build_patient` +
:func:`app.synthetic.study.write_study`, :func:`app.synthetic.demo.ensure_demo_study`.
"""
