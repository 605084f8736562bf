"""Natural-language captions for clips: paraphrase templates over (content, style) plus details
measured from the motion itself (distance, speed, turn, duration, which hand moves).

Five paraphrase families are written per clip. Family ``"E"`` is held out of training so that
evaluation can test phrasing the models never saw (``HELDOUT_FAMILY``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from coamd.data.process import facing_angle
from coamd.skeleton import FPS, HAND_L, HAND_R, JOINT_INDEX

FAMILIES = ("A", "B", "C", "D", "E")
HELDOUT_FAMILY = "E"

# Content -> (third-person verb phrase, gerund phrase). Sided contents name their side.
CONTENT_PHRASES: dict[str, tuple[str, str]] = {
    "walk": ("walks", "walking"),
    "run": ("runs", "running"),
    "dash": ("sprints", "sprinting"),
    "walk-back": ("walks backwards", "walking backwards"),
    "walk-left": ("walks diagonally to the left", "walking diagonally to the left"),
    "walk-right": ("walks diagonally to the right", "walking diagonally to the right"),
    "walk-turn-left": ("walks and turns left", "walking and turning left"),
    "walk-turn-right": ("walks and turns right", "walking and turning right"),
    "bow": ("bows", "bowing"),
    "bye": ("waves goodbye", "waving goodbye"),
    "byebye": ("waves bye-bye with big gestures", "waving bye-bye with big gestures"),
    "guide": ("gestures to show the way", "gesturing to show the way"),
    "respond": ("responds with a gesture", "responding with a gesture"),
    "call": ("beckons someone over", "beckoning someone over"),
    "punch": ("throws punches", "throwing punches"),
    "kick": ("kicks", "kicking"),
    "slash": ("slashes with a sword", "slashing with a sword"),
    "dance-long": ("performs a long dance", "performing a long dance"),
    "dance-short": ("performs a short dance", "performing a short dance"),
    "wave-both-hands": ("waves both hands", "waving both hands"),
    "wave-left-hand": ("waves the left hand", "waving the left hand"),
    "wave-right-hand": ("waves the right hand", "waving the right hand"),
    "raise-up-both-hands": ("raises both hands", "raising both hands"),
    "raise-up-left-hand": ("raises the left hand", "raising the left hand"),
    "raise-up-right-hand": ("raises the right hand", "raising the right hand"),
}

# Style -> (person noun phrase, adverbial phrase, adjective).
STYLE_PHRASES: dict[str, tuple[str, str, str]] = {
    "normal": ("a person", "normally", "ordinary"),
    "happy": ("a happy person", "happily", "happy"),
    "sad": ("a sad person", "sadly", "sad"),
    "angry": ("an angry person", "angrily", "angry"),
    "proud": ("a proud person", "proudly", "proud"),
    "not-confident": ("an unconfident person", "timidly", "timid"),
    "masculine": ("a masculine person", "in a masculine way", "masculine"),
    "feminine": ("a feminine person", "in a feminine way", "feminine"),
    "childish": ("a childlike person", "childishly", "childish"),
    "elderly": ("an elderly person", "like an old person", "elderly"),
    "exhausted": ("an exhausted person", "wearily", "exhausted"),
    "active": ("an energetic person", "energetically", "energetic"),
    "musical": ("a musical performer", "theatrically, like in a musical", "musical"),
    "giant": ("a giant", "heavily, like a giant", "giant-like"),
    "chimpira": ("a street thug", "like a thug", "thuggish"),
    "youthful": ("a youthful person", "youthfully", "youthful"),
}

LOCOMOTION = {"walk", "run", "dash", "walk-back", "walk-left", "walk-right", "walk-turn-left", "walk-turn-right"}
HAND_CONTENTS = {"bye", "byebye", "guide", "respond", "call", "punch", "slash"}

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
            "eighteen", "nineteen", "twenty"]


def number_words(x: float) -> str:
    """Round to the nearest whole number and spell it (up to twenty; digits beyond)."""
    n = int(round(x))
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


@dataclass
class MotionFacts:
    """Quantities measured from a canonical clip (metres, seconds, degrees)."""

    duration_s: float
    distance_m: float          # net horizontal displacement of the hips
    path_m: float              # horizontal path length of the hips
    speed_mps: float           # path length / duration
    travel: str                # "forward", "backward", "left", "right" or "in place"
    turn_deg: float            # heading change, positive = turn to the left
    active_hand: str           # "left", "right", "both" or "none"

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure(joints: np.ndarray, fps: float = FPS) -> MotionFacts:
    """Measure a canonical clip (T, 21, 3), metres at ``fps``; returns :class:`MotionFacts`."""
    T = joints.shape[0]
    duration = T / fps
    hips = joints[:, 0, [0, 2]]
    disp = hips[-1] - hips[0]
    distance = float(np.linalg.norm(disp))
    path = float(np.linalg.norm(np.diff(hips, axis=0), axis=1).sum()) if T > 1 else 0.0
    heading = facing_angle(joints)
    turn = float(np.degrees(np.unwrap(heading)[-1] - heading[0])) if T > 1 else 0.0
    if distance < 0.5:
        travel = "in place"
    else:
        # direction relative to the initial facing (canonical clips start facing +Z, left = +X)
        h0 = heading[0]
        fwd = np.array([np.sin(h0), np.cos(h0)])
        left = np.array([np.cos(h0), -np.sin(h0)])
        f, l = float(disp @ fwd), float(disp @ left)
        if abs(f) >= abs(l) * 0.8:
            travel = "forward" if f > 0 else "backward"
        else:
            travel = "left" if l > 0 else "right"
    chest = joints[:, JOINT_INDEX["Chest"]]
    hand_speed = []
    for h in (HAND_L, HAND_R):
        rel = joints[:, h] - chest
        hand_speed.append(float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * fps) if T > 1 else 0.0)
    sl, sr = hand_speed
    if max(sl, sr) < 0.25:
        hand = "none"
    elif sl > 1.8 * sr:
        hand = "left"
    elif sr > 1.8 * sl:
        hand = "right"
    else:
        hand = "both"
    return MotionFacts(duration, distance, path, path / max(duration, 1e-6), travel, turn, hand)


def _details(content: str, f: MotionFacts, style: str = "normal") -> list[str]:
    """Detail clauses measured from the motion (may be empty)."""
    parts: list[str] = []
    if content in LOCOMOTION and f.distance_m >= 0.5:
        pace = ""
        if f.speed_mps < 0.8 and content not in ("run", "dash"):
            pace = "slowly "
        elif f.speed_mps > 2.5:
            pace = "quickly "
        direction = {"forward": "forward", "backward": "backwards", "left": "towards the left",
                     "right": "towards the right"}.get(f.travel, "")
        parts.append(f"{pace}{direction} about {number_words(f.distance_m)} metre"
                     f"{'s' if round(f.distance_m) != 1 else ''}".strip())
    if abs(f.turn_deg) >= 45:
        side = "left" if f.turn_deg > 0 else "right"
        parts.append(f"then turns {side} by about {int(round(abs(f.turn_deg) / 15.0) * 15)} degrees")
    if content in HAND_CONTENTS and f.active_hand in ("left", "right"):
        parts.append(f"using the {f.active_hand} hand")
    return parts


def captions_for(content: str, style: str, facts: MotionFacts) -> list[dict[str, str]]:
    """Captions for one clip: a list of ``{"family": F, "text": ...}``, one per family in FAMILIES.

    Raises KeyError for a content or style name without phrases.
    """
    verb, gerund = CONTENT_PHRASES[content]
    person, adverb, adjective = STYLE_PHRASES[style]
    details = _details(content, facts, style)
    d_main = (" " + ", ".join(details)) if details else ""
    secs = number_words(facts.duration_s)
    styled_adverb = "" if style == "normal" else " " + adverb
    texts = {
        "A": f"{person} {verb}{d_main}.",
        "B": f"someone {verb}{styled_adverb}{d_main}.",
        "C": f"a person {verb}{styled_adverb}.",
        "D": f"the character is {gerund} in {'an ' if adjective[0] in 'aeiou' else 'a '}{adjective} "
             f"manner for about {secs} second{'s' if secs != 'one' else ''}{(', ' + ', '.join(details)) if details else ''}.",
        "E": f"{'in an ordinary way' if style == 'normal' else adverb}, a figure {verb}{d_main}.",
    }
    return [{"family": k, "text": texts[k][0].upper() + texts[k][1:]} for k in FAMILIES]


def content_label_text(content: str) -> str:
    """Label text for a content class, e.g. ``"a person waves the left hand"`` (recognizer classes)."""
    return f"a person {CONTENT_PHRASES[content][0]}"


def style_label_text(style: str) -> str:
    """Label text for a style class, e.g. ``"a person moving angrily"`` (recognizer classes)."""
    return f"a person moving {STYLE_PHRASES[style][1]}"
