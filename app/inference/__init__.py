"""Inference: preprocessing, the multi-pathway model, weights + model description, the
predictor with majority voting, Grad-CAM. torch; no Qt."""
