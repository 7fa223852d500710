"""The generated demo application and its seeded workflow."""
