"""The DICOM fuzzing harness behind ``bench/fuzz_dicom.py`` (issue 14).

``seeds`` makes the seed studies, ``mutations`` draws and applies the mutations (each one
deterministic from its own parameters, so that any subset of a case's mutations can be applied
again for minimising), ``oracle`` runs a case (in a worker process or through the command line)
and judges the outcome, ``minimise`` shrinks a failing case to a small reproducer.
"""
