"""An example third-party plugin."""
