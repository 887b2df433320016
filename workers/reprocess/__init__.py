"""``firstmotion reprocess``: polarities and mechanisms for an existing catalog from its
waveform archive, through the same Redis streams and workers as the live system (see
:mod:`workers.reprocess.pipeline`)."""
