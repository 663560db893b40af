"""The ``timeseries`` and ``imu`` modalities: ``readers.py`` reads tables (CSV/TSV/Parquet),
NumPy arrays (NPY/NPZ) and UEA/sktime ``.ts`` files; ``tokenizer.py`` cuts windows of long
recordings (or takes whole cases), fills short gaps, applies the train-fitted per-channel
scaling and stores float32 steps; ``projector.py`` holds the Informer (Meta-Transformer),
PatchTST and ImageBind-style projectors, chosen with ``embed --projector-option kind=...``.
``imu`` is the same tokenizer with IMU presets and the ImageBind projector by default."""

from ..base import ModalitySpec, register_modality
from .readers import EXTENSIONS
from .tokenizer import TimeSeriesConfig, TimeSeriesTokenizer, fill_gaps, window_starts

__all__ = ["EXTENSIONS", "TimeSeriesConfig", "TimeSeriesTokenizer", "fill_gaps",
           "window_starts"]

INPUTS = ("tokens", "length", "mean", "std")
TINY = {"window": 32, "stride": 16, "num_channels": 3, "scaling": "none"}
ACC_GYRO_UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3

register_modality(ModalitySpec(
    name="timeseries", config_class=TimeSeriesConfig, tokenizer=TimeSeriesTokenizer,
    extensions=EXTENSIONS,
    help="time series (CSV/TSV/Parquet columns, NPY/NPZ, UEA .ts cases -> windows of C "
         "channels x 96 steps, train-fitted scaling; Informer / PatchTST projectors)",
    projector="mmtok.modalities.timeseries.projector:build_timeseries", inputs=INPUTS,
    presets={"none": {}, "ett": {"window": 96, "stride": 1, "time_column": "date"}},
    tiny_options=TINY, docs="docs/modalities/timeseries.md",
))

register_modality(ModalitySpec(
    name="imu", config_class=TimeSeriesConfig, tokenizer=TimeSeriesTokenizer,
    extensions=EXTENSIONS,
    help="IMU (accelerometer + gyroscope tables or arrays -> 128-step windows, 50 % overlap; "
         "ImageBind-style 8-step patches)",
    projector="mmtok.modalities.timeseries.projector:build_imu", inputs=INPUTS,
    defaults={"preset": "acc-gyro"},
    presets={
        "acc-gyro": {"num_channels": 6, "units": ACC_GYRO_UNITS, "window": 128, "stride": 64},
        "uci-har": {"num_channels": 6, "units": ("g",) * 3 + ("rad/s",) * 3, "rate": 50.0,
                    "window": 128, "stride": 64},
        "none": {},
    },
    tiny_options={**TINY, "preset": "none"}, docs="docs/modalities/imu.md",
))
