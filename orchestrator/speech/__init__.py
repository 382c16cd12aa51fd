"""Text to speech: libespeak-ng in this process, 8 kHz mu-law files for a ulaw trunk."""

from orchestrator.speech.render import Rendered, SpeechError, available_voices, render, render_each

__all__ = ["Rendered", "SpeechError", "available_voices", "render", "render_each"]
