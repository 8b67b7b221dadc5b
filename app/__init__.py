"""HCC Response: offline prediction of response to lenvatinib + immune checkpoint inhibitors
in unresectable hepatocellular carcinoma from pre-treatment multiphase liver CT.

Layers (imports point downwards only; nothing below ``app.ui`` imports Qt; the order of the
core is checked by ``tests/test_layers.py``)::

    app.ui          PySide6 + pyqtgraph: windows, viewers, QThread workers
    app.cli         command-line entry (app.commands)
    app.case        the flow of one case, shared by the commands and the app (+ app.casework,
                    the prediction <-> register adapter)
    app.training    cohort, training loop, evaluation statistics
    app.synthetic   phantom multiphase liver CT written as DICOM (its label maps follow the
                    model's input geometry, from app.inference.preprocess)
    app.inference   model, weights, predictor, Grad-CAM (result types in a torch-free module)
    app.register    SQLite case register (imports neither torch nor app.inference)
    app.dicom       scan, volumes, phase classification, study assembly, study choice
"""

__version__ = "0.1.0"

#: Phase names used everywhere (the paper's C, A, V).
PHASES: tuple[str, str, str] = ("plain", "arterial", "portal")

INTENDED_USE = (
    "Research software. Predicts RECIST 1.1 response (CR/PR) to lenvatinib plus an immune "
    "checkpoint inhibitor in unresectable HCC from pre-treatment plain, arterial and portal-venous "
    "CT. It supports, and never replaces, the judgement of the treating physician and the "
    "multidisciplinary tumour board. Not a certified medical device."
)
