"""CoAMD runtime: real-time text-to-motion with a multi-modal action recognizer."""
__version__ = "0.1.0"
