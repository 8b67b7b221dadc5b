"""The flow of one case, Qt-free: scan → choose study → assemble → model → predict → explain →
record (DESIGN.md "the flow of one case").

``hcc-response predict``, ``hcc-response self-test`` and the desktop app's jobs all run these
functions, so a case gives the same result whichever door it came in by. Every step takes a
:class:`app.progress.Progress` (progress and cancellation) and raises the core's typed errors;
what is specific to a door — the terminal's progress bar, the worker thread, the dialog — stays
with the door.

Modules:

* :mod:`app.case.model` — which model file, loaded once and shared (:class:`ModelHolder`).
* :mod:`app.case.flow` — predict, explain and record one assembled study.
* :mod:`app.case.records` — the register's side: listing, outcome, export, verification,
  reading a recorded case (what the app's register jobs run).
* :mod:`app.case.imports` — one import of the engine at a time across threads.

The first step, choosing the study of a folder (:func:`app.dicom.studies.open_study`), lives in
the DICOM layer: training prepares each cohort study through it too, and training sits below
this package.

Layering: ``app.case`` sits above ``app.dicom``, ``app.inference`` and ``app.register`` and
below ``app.commands`` and ``app.ui``; it never imports Qt. Its heavy imports (torch) happen
inside the functions that need them, so importing the package stays cheap.
"""
