"""Text to speech: libespeak-ng in this process, 8 kHz mu-law files for a ulaw trunk."""

from orchestrator.speech.render import SpeechError, available_voices, render

__all__ = ["SpeechError", "available_voices", "render"]
