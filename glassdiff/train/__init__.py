"""Training: the autoencoder, then the denoiser on cached latents and text embeddings."""
