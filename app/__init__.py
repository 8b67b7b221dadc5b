"""HCC Response: offline prediction of response to lenvatinib + immune checkpoint inhibitors
in unresectable hepatocellular carcinoma from pre-treatment multiphase liver CT.

Layers (imports point downwards only; nothing below ``app.ui`` imports Qt)::

    app.ui          PySide6 + pyqtgraph
    app.cli         command-line entry
    app.inference   model, weights, predictor, Grad-CAM
    app.training    cohort, training loop, evaluation statistics
    app.register    SQLite case register
    app.dicom       scan, volumes, phase classification, study assembly
    app.synthetic   phantom multiphase liver CT written as DICOM
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
