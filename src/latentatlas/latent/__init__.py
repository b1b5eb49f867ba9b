"""Latent-space tools: encoding, samplers, interpolation, attribute vectors, geometry and geodesics."""
