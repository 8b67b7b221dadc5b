"""The register adapter both ways (app.casework): what a prediction's record keeps, and the
result a re-opened case shows — including how its probability was made (schema 0003)."""

from __future__ import annotations

from pathlib import Path

import ui_fixtures as fx

from app.case.records import read_case
from app.casework import prediction_record
from app.register import open_register


def test_a_reopened_case_says_how_its_probability_was_made(tmp_path: Path) -> None:
    study = fx.constructed_study()
    result = fx.prediction_result([0.2, 0.7, 0.8, 0.6], decided_by="patient_head",
                                  model_name="demo", model_version="2026.4",
                                  model_sha256="cd" * 32)
    record = prediction_record(study, result, source_folder=str(tmp_path))
    assert record.decided_by == "patient_head"
    with open_register(tmp_path / "register.sqlite") as reg:
        case_id = reg.add_prediction(record)
        case = read_case(reg, case_id)
        assert reg.verify().ok
    assert case.result.decided_by == "patient_head"
    assert case.result.probability_text == result.probability_text
    assert "patient-level model" in case.result.probability_text
    assert case.result.label == result.label
    assert abs(case.result.mean_probability - result.mean_probability) < 1e-12


def test_a_case_recorded_without_its_rule_reads_back_without_one(tmp_path: Path) -> None:
    with open_register(tmp_path / "register.sqlite") as reg:
        case = read_case(reg, reg.add_prediction(fx.prediction_record("P-OLD")))
    assert case.record.decided_by == "" and case.result.decided_by == ""
    assert case.result.probability_text == "Probability of response 0.70"
