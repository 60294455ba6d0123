"""Code copied into conversion stages and server images; imports nothing from the pipeline."""
