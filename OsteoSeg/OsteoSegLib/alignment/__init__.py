"""Alignment: the PET onto the CT grid, by resampling (one frame of reference) or after rigid
registration (Mattes mutual information), with the transform and a quality report."""
