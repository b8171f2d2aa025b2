"""Training: one model per label source and inputs (resumable, DDP), its 3D validation against
baselines, its learning curve, and a tiny model set for the Slicer self-test. Above `inference`,
because a run's validation predicts its validation patients in 3D."""
