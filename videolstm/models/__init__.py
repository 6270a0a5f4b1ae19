"""The VideoLSTM model zoo (placeholder until the models land)."""

VARIANTS = ("convnet", "lstm", "alstm", "convlstm", "convalstm", "motion_alstm", "videolstm")
