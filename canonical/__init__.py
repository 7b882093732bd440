"""The business language of o2c: models and pure, exact domain maths. Imports nothing else of o2c."""
