"""The model: preprocessing, the 2D U-Net, the loss, batched augmentation, the compute device, model
packages (safetensors weights + card) and a cohort's cases as network inputs (slice data)."""
