"""VideoLSTM: convolutional, attention and motion-based attention LSTMs for action recognition.

The library is pure: torch, numpy, OpenCV, pyarrow, fsspec and pydantic. It never imports Ray
or Prefect; ``tasks/`` and ``flows/`` wrap it for distributed execution and orchestration.
"""

__version__ = "0.1.0"
