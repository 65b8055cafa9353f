"""pneumobench: the Viel & Orhan (2020) pneumothorax segmentation paper as a test suite."""

__version__ = "0.1.0"
