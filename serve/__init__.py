"""HTTP serving of compressed artifacts (see the serving issue); reads artifacts via compress.artifact."""
