"""vaebook."""
