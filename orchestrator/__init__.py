"""SESPCLSwitch orchestrator: REST API, dispatcher and Asterisk adapters."""

__version__ = "0.1.0"
