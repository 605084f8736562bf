"""Hand-written lexicons of the trained vocabulary, for understanding free text.

The training captions (:mod:`coamd.data.captions`) use one phrasing per label. People do not:
they write "jog", "stroll", "take a bow", "hands up", "like a grandpa". These lists give, per
label, the verbs, nouns, idioms and adverbs that mean it, plus motions the models do NOT know
(``UNSUPPORTED``), so that :mod:`coamd.models.understanding` can be fitted on varied phrasing.

* ``CONTENT_LEXICON``: content label -> phrases naming the action (verb phrases in the third
  person, imperative or gerund form, and noun phrases). Sided contents always name their side.
* ``STYLE_LEXICON``: style label -> ``{"adverbs": [...], "people": [...], "states": [...]}``:
  manner phrases that can follow or precede an action, person noun phrases that carry the style,
  and state or situation clauses set off by a comma ("fired up", "at the end of a long shift").
* ``SUBJECTS``: style-neutral subjects ("someone", "she", "the character", "I"); ``SCENES``:
  scene words that carry no label ("in the park", "after lunch"). No list uses the word
  "figure", the subject of the held-out caption family E ("a figure walks").
* ``UNSUPPORTED``: concept -> phrases of motions outside the trained vocabulary (the concept name
  is what an out-of-vocabulary note quotes).

Every phrase is lower case and without final punctuation. :func:`compose` builds sentences from
these pieces (a seeded generator: the same seed gives the same list).
"""
from __future__ import annotations

import numpy as np

CONTENT_LEXICON: dict[str, list[str]] = {
    "walk": [
        "walks", "walking", "walk forward", "strolls", "strolling along", "takes a stroll", "saunters",
        "sauntering ahead", "ambles", "ambling along", "wanders forward", "paces forward", "treads along",
        "steps forward", "takes steps forward", "marches ahead", "marching forward", "trudges along",
        "plods along", "hikes along the path", "walks straight ahead", "walking in a straight line",
        "goes on foot", "moves forward at a walking pace", "a leisurely walk", "goes for a walk",
        "walks across the room", "walks down the corridor", "walks along the path", "traipses along",
        "a brisk walk", "promenades", "struts forward", "shuffles along", "waddles forward",
        "tiptoes forward", "sneaks forward", "stomps ahead", "walks a few metres", "walking at an easy pace",
        "walks toward the camera", "heads forward on foot", "steps out", "makes their way forward",
        "a walk forward", "a stroll", "pacing", "striding along", "strides ahead",
    ],
    "run": [
        "runs", "running", "jogs", "jogging", "a jog", "a run", "trots", "trotting along", "lopes along",
        "runs forward", "jogs ahead", "runs along", "goes for a run", "runs laps", "runs in a straight line",
        "jogs at an easy pace", "runs at a steady pace", "running forward", "a steady run", "breaks into a run",
        "runs down the road", "a morning jog", "is out jogging", "runs across the field", "jog",
        "a light jog", "jogging in place then forward", "runs a short distance", "does a bit of running",
        "runs at a moderate speed", "a relaxed run", "jogs along the beach", "runs toward the finish",
        "keeps running", "running along the track",
    ],
    "dash": [
        "sprints", "sprinting", "a sprint", "dashes", "dashing forward", "bolts", "bolting ahead",
        "races forward", "darts forward", "rushes ahead", "runs at full speed", "runs as fast as possible",
        "charges forward", "hurtles forward", "zooms ahead", "speeds ahead", "tears off down the track",
        "runs very fast", "a fast dash", "sprint forward", "goes at full tilt", "runs for dear life",
        "makes a mad dash", "runs at top speed", "a hundred metre sprint", "races down the track",
        "sprints to the finish line", "a burst of speed", "runs like the wind", "scrambles forward at speed",
        "a quick dash", "dashes across the street", "sprints off", "flies forward at a sprint",
    ],
    "walk-back": [
        "walks backwards", "walking backward", "backs up", "backing away", "steps backwards",
        "moves backwards", "retreats", "retreating step by step", "backpedals", "backpedalling",
        "walks in reverse", "steps back", "moves back without turning", "recoils backwards",
        "goes backwards", "walking back while still facing forward", "edges backwards", "shuffles in reverse",
        "walks back away from something", "takes steps back", "backs off", "steps away backwards",
        "walks backward slowly", "a few steps backwards", "withdraws backwards", "reverses away",
        "moves in reverse", "walking backwards across the room", "backs away from the edge",
    ],
    "walk-left": [
        "walks diagonally to the left", "walking diagonally left", "walks forward and left",
        "heads diagonally left", "moves at an angle to the left", "walks on a leftward diagonal",
        "angles off to the left", "drifts leftward while walking", "walks towards the left front",
        "walks slanting left", "crosses diagonally to the left", "walks forward and leftward",
        "moves diagonally toward the left side", "goes off to the left at an angle", "walks obliquely left",
        "walks at forty-five degrees to the left", "a diagonal walk leftward", "walks toward the front left",
        "steps diagonally left", "walking on a slant toward the left", "cuts diagonally across to the left",
        "walks left at an angle", "strolls diagonally to the left", "makes a diagonal path to the left",
        "travels forward and to the left", "walks to the upper left", "walking leftward on a diagonal line",
    ],
    "walk-right": [
        "walks diagonally to the right", "walking diagonally right", "walks forward and right",
        "heads diagonally right", "moves at an angle to the right", "walks on a rightward diagonal",
        "angles off to the right", "drifts rightward while walking", "walks towards the right front",
        "walks slanting right", "crosses diagonally to the right", "walks forward and rightward",
        "moves diagonally toward the right side", "goes off to the right at an angle", "walks obliquely right",
        "walks at forty-five degrees to the right", "a diagonal walk rightward", "walks toward the front right",
        "steps diagonally right", "walking on a slant toward the right", "cuts diagonally across to the right",
        "walks right at an angle", "strolls diagonally to the right", "makes a diagonal path to the right",
        "travels forward and to the right", "walks to the upper right", "walking rightward on a diagonal line",
    ],
    "walk-turn-left": [
        "walks and turns left", "turns left while walking", "makes a left turn", "takes a left",
        "turns to the left", "turning left", "walks then turns left", "goes around a corner to the left",
        "rounds the corner left", "walks and changes direction to the left", "curves to the left",
        "swings left", "wheels left", "pivots left while walking", "walks in a left curve",
        "makes a ninety degree left turn", "walks forward and then heads left", "turns counterclockwise while walking",
        "a left turn", "walks and veers off to the left", "does a left turn", "walks and bends left",
        "turns left at the intersection", "walks, then swings round to the left", "a walking turn to the left",
        "takes the left path", "turns leftward as he walks", "walks and turns ninety degrees left",
        "follows the path as it turns left", "walks and spins to face left",
    ],
    "walk-turn-right": [
        "walks and turns right", "turns right while walking", "makes a right turn", "takes a right",
        "turns to the right", "turning right", "walks then turns right", "goes around a corner to the right",
        "rounds the corner right", "walks and changes direction to the right", "curves to the right",
        "swings right", "wheels right", "pivots right while walking", "walks in a right curve",
        "makes a ninety degree right turn", "walks forward and then heads right", "turns clockwise while walking",
        "a right turn", "walks and veers off to the right", "does a right turn", "walks and bends right",
        "turns right at the intersection", "walks, then swings round to the right", "a walking turn to the right",
        "takes the right path", "turns rightward as she walks", "walks and turns ninety degrees right",
        "follows the path as it turns right", "walks and spins to face right",
    ],
    "bow": [
        "bows", "bowing", "a bow", "bows deeply", "bows respectfully", "bends at the waist",
        "bows the head and upper body", "a deep bow", "gives a bow", "bows in greeting", "bows to the crowd",
        "makes a respectful bow", "a formal bow", "bows in apology", "bows in thanks", "inclines the upper body",
        "bends forward politely", "a courteous bow", "greets with a bow", "a japanese-style bow",
        "bows low", "a polite bow", "bows to a superior", "bows after the performance", "bows slightly",
        "takes a deep bow", "lowers the torso in a bow", "does an ojigi", "bows to say thank you",
    ],
    "bye": [
        "waves goodbye", "waving goodbye", "waves farewell", "waves bye", "says goodbye with a wave",
        "a farewell wave", "bids farewell", "waves to someone leaving", "waves as a friend departs",
        "says see you with a wave", "waves goodbye with one hand", "a goodbye wave", "waving farewell to a friend",
        "waves a visitor off", "waves someone off", "gives a parting wave", "waves adieu", "a small goodbye wave",
        "waves cheerio", "says farewell", "says goodbye", "waves goodbye to the guests", "bids adieu with a hand",
        "waves off a departing car", "a quick farewell wave", "waves bye to a colleague", "says bye",
    ],
    "byebye": [
        "waves bye-bye with big gestures", "a big goodbye wave", "waves goodbye with both arms",
        "waves farewell with large arm movements", "an exaggerated goodbye wave", "waves bye-bye enthusiastically",
        "frantic goodbye waving", "waves goodbye with sweeping gestures", "waving bye-bye widely",
        "a large animated farewell wave", "waves goodbye with huge arm swings", "waves both arms to say goodbye",
        "a dramatic farewell wave", "waves bye-bye high over the head", "a big bye-bye",
        "waves goodbye wildly", "a wide two-armed farewell", "waves an enormous goodbye",
        "says bye-bye with whole-arm waves", "waves goodbye excitedly with big motions",
        "a vigorous goodbye with both arms", "bye-bye with arms swinging wide",
    ],
    "call": [
        "beckons someone over", "beckoning", "calls someone over", "waves someone over",
        "motions someone to come", "gestures come here", "signals someone to approach", "a come-here gesture",
        "summons someone with a hand", "calls to someone with a gesture", "motions for a person to come closer",
        "waves someone in", "curls the fingers to say come", "signals to come over", "calls a friend over",
        "beckons with the hand", "gestures for someone to approach", "beckons someone closer",
        "waves a friend over to join", "calls out and waves someone near", "beckons", "calls a waiter over",
        "signals a child to come back", "invites someone over with a wave of the hand", "says come over here",
        "gestures to a colleague to come", "calls someone to come closer",
    ],
    "guide": [
        "gestures to show the way", "shows the way", "points the way", "points out the direction",
        "indicates the direction with a hand", "directs someone", "gives directions with a gesture",
        "ushers someone in", "guides someone with the hand", "leads the way with a gesture",
        "shows someone where to go", "motions in a direction", "gestures toward a door", "indicates the path",
        "signals which way to go", "points towards the exit", "an after-you gesture", "a guiding gesture",
        "holds out an arm to show the direction", "directs visitors", "shows the route with an open hand",
        "ushers guests inside", "indicates where to sit", "gestures the way forward", "guides a visitor",
        "shows a customer the way", "points down the road", "escorts someone with a gesture",
    ],
    "respond": [
        "responds with a gesture", "responding with a gesture", "replies with a gesture",
        "answers with a gesture", "gestures in reply", "reacts with a gesture", "acknowledges with a gesture",
        "acknowledges someone", "gestures back", "signals a reply", "an answering gesture", "replies to a call",
        "responds to someone calling", "answers a call with the hand", "makes a gesture in response",
        "a responsive gesture", "gives an answer by gesture", "acknowledges being called",
        "responds to a greeting", "answers back with the hand", "reacts to someone's call", "responds",
        "replies", "answers someone", "a gesture of acknowledgement", "signals that they heard",
        "responds when called", "a reply gesture",
    ],
    "kick": [
        "kicks", "kicking", "a kick", "kicks forward", "kicks with the leg", "a front kick",
        "a roundhouse kick", "a side kick", "kicks a ball", "kicks hard", "kicks out", "kicks the air",
        "boots something", "a karate kick", "kicks an object", "kicks at an opponent", "strikes with the leg",
        "kicks with the foot", "delivers a kick", "snaps a kick", "a kung fu kick", "kicks a football",
        "kicks the door", "a high kick", "kicks a stone", "kicks a box away", "takes a penalty kick",
        "kicks out with one leg", "a taekwondo kick", "kicks the bag",
    ],
    "punch": [
        "punches", "punching", "throws punches", "throws a punch", "jabs", "jabbing", "a jab",
        "an uppercut", "a hook punch", "boxes", "boxing", "shadowboxes", "punches the air", "strikes with the fist",
        "hits with a fist", "swings a fist", "punches forward", "a straight punch", "a series of punches",
        "pummels", "a one-two combo", "spars", "throws jabs and hooks", "punches a bag", "a fist strike",
        "throws a right hook", "a flurry of blows", "punches an opponent", "a karate punch", "boxes the air",
    ],
    "slash": [
        "slashes with a sword", "slashing with a sword", "a sword slash", "swings a sword", "cuts with a sword",
        "slices with a blade", "hacks with a sword", "strikes with a sword", "a sword strike", "wields a sword",
        "swordplay", "brandishes a sword and cuts", "slashes downward", "a diagonal sword cut",
        "slashes with a katana", "cuts with a blade", "swings a blade", "fences with a sabre",
        "slices the air with a sword", "a horizontal slash", "swings a sabre", "chops with a sword",
        "slashes", "a katana cut", "swings a longsword", "cuts down an enemy with a sword",
        "a sword attack", "strikes with a blade", "slashes at a dummy",
    ],
    "dance-short": [
        "performs a short dance", "dances", "dancing", "a short dance", "a brief dance", "dances briefly",
        "does a little dance", "a dance move", "a few dance steps", "grooves", "boogies", "shakes a leg",
        "a quick dance", "dances to music", "does a dance routine", "a short choreography",
        "twirls and dances", "sways to the beat", "dances for a few seconds", "a happy little dance",
        "does some dance moves", "dances a jig", "a shuffle dance", "a disco move", "dances a short routine",
        "a little victory dance", "a dance step or two", "jives", "dances around", "moves to the rhythm",
    ],
    "raise-up-both-hands": [
        "raises both hands", "raising both hands", "raises both arms", "lifts both arms",
        "puts both hands up", "both arms up", "holds both hands high", "arms raised overhead",
        "throws both arms up", "reaches up with both arms", "hands raised in the air",
        "lifts both hands over the head", "stretches both arms up", "raises the arms in victory",
        "puts the hands up in surrender", "both hands raised", "lifts the arms skyward",
        "raises both hands to the sky", "elevates both arms", "holds up both hands", "raises both palms",
        "both arms lifted high", "raises the arms above the head", "lifts both hands in celebration",
        "puts both arms up", "reaches for the sky with both hands", "raises two hands",
    ],
    "raise-up-left-hand": [
        "raises the left hand", "raising the left hand", "lifts the left arm", "puts the left hand up",
        "left hand raised", "raises the left arm overhead", "holds up the left hand", "left arm up",
        "reaches up with the left hand", "lifts the left hand high", "raises the left hand to ask a question",
        "puts up the left hand", "sticks the left arm up", "raises the left hand to volunteer",
        "left hand in the air", "elevates the left arm", "shoots the left hand up", "raises his left hand",
        "raises her left hand", "a raised left hand", "lifts the left hand above the head",
        "raises the left palm", "the left arm goes up", "holds the left arm up high", "raises one hand, the left",
        "stretches the left arm upward", "puts the left arm in the air",
    ],
    "raise-up-right-hand": [
        "raises the right hand", "raising the right hand", "lifts the right arm", "puts the right hand up",
        "right hand raised", "raises the right arm overhead", "holds up the right hand", "right arm up",
        "reaches up with the right hand", "lifts the right hand high", "raises the right hand to ask a question",
        "puts up the right hand", "sticks the right arm up", "raises the right hand to volunteer",
        "right hand in the air", "elevates the right arm", "shoots the right hand up", "raises his right hand",
        "raises her right hand", "a raised right hand", "lifts the right hand above the head",
        "raises the right palm", "the right arm goes up", "holds the right arm up high", "raises one hand, the right",
        "stretches the right arm upward", "puts the right arm in the air",
    ],
    "wave-both-hands": [
        "waves both hands", "waving both hands", "waves with both hands", "waves both arms",
        "waving with both arms", "waves both arms overhead", "a two-handed wave", "waves with both hands raised",
        "waves both hands in greeting", "waves both arms to signal", "waves the hands side to side",
        "waves both palms", "waves hello with both hands", "both hands waving side to side", "waves both arms at a friend",
        "waves with two hands", "greets with both hands waving", "waves both hands above the head",
        "flaps both arms in a wave", "waves both hands at the camera", "waves both hands for attention",
        "waves to someone with both arms", "a wave using both hands",
    ],
    "wave-left-hand": [
        "waves the left hand", "waving the left hand", "waves with the left hand", "the left hand waving back and forth",
        "waves the left arm", "waves hello with the left hand", "a wave of the left hand",
        "greets with the left hand waving", "waves hi with the left hand", "waves at someone with the left hand",
        "waves his left hand", "waves her left hand", "a left-hand wave", "gives a wave with the left hand",
        "waves the left palm", "waves to a friend with the left hand", "the left hand waves",
        "waves using only the left hand", "lifts the left hand and waves it", "waves with the left",
        "a wave with the left arm", "waves the left hand in greeting",
    ],
    "wave-right-hand": [
        "waves the right hand", "waving the right hand", "waves with the right hand", "the right hand waving back and forth",
        "waves the right arm", "waves hello with the right hand", "a wave of the right hand",
        "greets with the right hand waving", "waves hi with the right hand", "waves at someone with the right hand",
        "waves his right hand", "waves her right hand", "a right-hand wave", "gives a wave with the right hand",
        "waves the right palm", "waves to a friend with the right hand", "the right hand waves",
        "waves using only the right hand", "lifts the right hand and waves it", "waves with the right",
        "a wave with the right arm", "waves the right hand in greeting",
    ],
}

STYLE_LEXICON: dict[str, dict[str, list[str]]] = {
    "active": {
        "adverbs": ["energetically", "with energy", "lively", "vigorously", "briskly", "dynamically",
                    "full of energy", "with pep", "spiritedly", "bouncily", "with vigour", "animatedly",
                    "with gusto", "zestfully", "sprightly", "actively", "with lots of energy", "peppily",
                    "enthusiastically", "eagerly", "excitedly", "with enthusiasm", "with a spring in the step",
                    "full of beans", "raring to go", "bursting with energy", "zippily", "with vim and vigour",
                    "keenly", "with great gusto", "like a bundle of energy", "with bounce and drive", "snappily"],
        "people": ["an energetic person", "a lively person", "an athletic person", "a peppy woman",
                   "an energetic man", "a vigorous person", "a spirited athlete", "a hyperactive person",
                   "a cheerleader", "a fitness instructor", "an eager volunteer", "a go-getter",
                   "an enthusiastic coach", "a bubbly host", "a spirited camp counsellor"],
        "states": ["fired up", "pumped up", "all hyped up", "wide awake and raring to go",
                   "buzzing with energy", "after three cups of coffee", "full of pep", "eager to get going",
                   "charged up and ready"],
    },
    "angry": {
        "adverbs": ["angrily", "furiously", "in a rage", "irately", "with clenched fists", "aggressively",
                    "in a temper", "grumpily", "huffily", "crossly", "indignantly", "fuming", "in anger",
                    "with fury", "hotheadedly", "resentfully", "in a huff", "madly, full of anger"],
        "people": ["an angry person", "a furious man", "an enraged woman", "an irate customer",
                   "a livid person", "an angry man", "a mad person", "a grumpy man", "an annoyed woman"],
        "states": ["seething with rage", "fed up and furious", "red in the face with anger", "boiling mad",
                   "after a heated argument"],
    },
    "childish": {
        "adverbs": ["childishly", "like a child", "like a kid", "like a little kid", "in a childish way",
                    "babyishly", "immaturely", "like a small child", "with childlike glee", "kiddishly",
                    "like a toddler", "in a childlike manner"],
        "people": ["a child", "a kid", "a little boy", "a little girl", "a toddler", "a small child",
                   "a young child", "a five-year-old", "a childlike person", "a preschooler", "a little kid"],
        "states": ["acting like a five-year-old", "silly and childlike", "throwing a little tantrum",
                   "like a kid in a candy store"],
    },
    "chimpira": {
        "adverbs": ["like a thug", "thuggishly", "with a swagger", "menacingly like a gangster",
                    "like a hoodlum", "like a street punk", "like a delinquent",
                    "intimidatingly, like a gangster", "like a yakuza underling", "like a hooligan",
                    "like a chinpira", "in a bullying way"],
        "people": ["a thug", "a street thug", "a gangster", "a hoodlum", "a delinquent", "a punk", "a yakuza",
                   "a hooligan", "a ruffian", "a bully", "a lowlife", "a street tough", "a petty gangster",
                   "a chinpira"],
        "states": ["looking for trouble like a street punk", "acting like a small-time gangster",
                   "with a thug's menacing strut"],
    },
    "elderly": {
        "adverbs": ["like an old person", "like an elderly person", "stiffly like an old man",
                    "hunched over with age", "like a grandpa", "like a grandmother", "frailly", "with a cane",
                    "slowly like an old man", "in an elderly way", "with aged stiffness", "hobbling",
                    "with creaky joints", "with a bad back", "bent with age", "doddering",
                    "with aching old knees", "unsteadily, like a senior", "with an old person's stoop"],
        "people": ["an elderly person", "an old man", "an old woman", "an old lady", "a grandpa", "a grandma",
                   "a grandfather", "a grandmother", "a senior citizen", "an aged person", "a frail old man",
                   "a pensioner", "a retiree", "an old-timer", "an elderly gentleman", "an eighty-year-old",
                   "a senior", "a great-grandmother", "a ninety-year-old", "an old fisherman", "a retired man",
                   "a little old lady", "an aging professor", "an old veteran", "a white-haired woman"],
        "states": ["old and frail", "stiff with age", "at ninety years old", "with arthritis in the knees",
                   "in the twilight of life", "weak with old age"],
    },
    "exhausted": {
        "adverbs": ["wearily", "tiredly", "exhaustedly", "worn out", "fatigued", "drained", "sluggishly",
                    "out of breath", "panting", "listlessly", "bone-tired", "wiped out", "sleepily",
                    "with heavy tired limbs", "completely spent", "half-heartedly", "dragging the feet",
                    "barely able to keep going", "limply", "with drooping shoulders", "heavily, worn out",
                    "with the last of the strength", "droopily"],
        "people": ["an exhausted person", "a tired man", "a weary woman", "a worn-out worker",
                   "a fatigued person", "an exhausted runner", "a sleepy person", "a drained office worker",
                   "a tired person", "a tired nurse", "a night-shift worker", "an overworked employee",
                   "an exhausted soldier", "a marathoner at the finish line", "a weary traveller",
                   "a sleep-deprived parent"],
        "states": ["dead tired", "completely beat", "worn out after a long day", "at the end of a long shift",
                   "after an all-nighter", "running on empty", "too tired to go on", "after a marathon",
                   "barely awake", "dead on the feet", "out of gas", "ready to collapse"],
    },
    "feminine": {
        "adverbs": ["in a feminine way", "femininely", "gracefully", "elegantly", "delicately", "daintily",
                    "in a ladylike way", "with feminine grace", "like a lady", "demurely", "prettily",
                    "coquettishly", "with a feminine sway", "in a girly way", "swaying the hips",
                    "like a model on a catwalk", "like a ballerina", "with a graceful sway", "with poise",
                    "gracefully like a lady", "with soft feminine gestures"],
        "people": ["a feminine person", "a lady", "a graceful woman", "an elegant lady", "a ladylike woman",
                   "a dainty woman", "a feminine woman", "a graceful girl", "a ballerina", "a princess",
                   "a runway model", "a bride", "a fashion model", "a lady in high heels", "an elegant woman",
                   "a graceful dancer", "a beauty queen"],
        "states": ["graceful and ladylike", "as elegant as a dancer", "poised and feminine",
                   "all grace and charm"],
    },
    "giant": {
        "adverbs": ["heavily, like a giant", "like a giant", "lumberingly", "ponderously",
                    "with heavy thudding steps", "like a colossus", "like an ogre", "like a troll",
                    "with enormous heavy movements", "like a huge monster", "like a golem", "massively"],
        "people": ["a giant", "an ogre", "a troll", "a huge man", "a hulking brute", "a titan", "a colossus",
                   "a towering brute", "an enormous person", "a massive giant", "a lumbering giant"],
        "states": ["huge and heavy like a giant", "shaking the ground with every move"],
    },
    "happy": {
        "adverbs": ["happily", "cheerfully", "joyfully", "gleefully", "merrily", "with a smile", "smiling",
                    "gladly", "jollily", "in a good mood", "elatedly", "beaming", "chirpily", "with joy",
                    "delightedly", "full of joy"],
        "people": ["a happy person", "a cheerful man", "a joyful woman", "a smiling person",
                   "a delighted person", "a jolly man", "an overjoyed person", "a happy woman"],
        "states": ["in a great mood", "over the moon", "beaming with joy", "happy as can be",
                   "after hearing good news"],
    },
    "masculine": {
        "adverbs": ["in a masculine way", "manly", "in a manly way", "macho", "like a man's man", "virilely",
                    "with broad shoulders", "brawnily", "in a macho manner", "with masculine swagger",
                    "like a tough guy", "with a manly swagger", "with the chest puffed out",
                    "with broad strides", "like a real man", "ruggedly", "with a strong masculine posture",
                    "in a tough-guy way"],
        "people": ["a masculine person", "a manly man", "a macho man", "a muscular man", "a burly man",
                   "a rugged man", "a bodybuilder", "a brawny guy", "a beefy guy", "a hunky man",
                   "a strong man", "a masculine man", "a tough guy", "a lumberjack", "a wrestler",
                   "a construction worker", "a soldier", "a firefighter", "a football player", "a cowboy",
                   "a weightlifter", "a big strong guy", "a bouncer", "a biker"],
        "states": ["manly and strong", "broad-shouldered and manly", "chest puffed out",
                   "all muscle and swagger", "acting like a tough guy"],
    },
    "musical": {
        "adverbs": ["theatrically, like in a musical", "theatrically", "like on stage", "like a broadway star",
                    "with dramatic flair", "showily", "flamboyantly", "like a singer in a show", "operatically",
                    "like a song-and-dance man", "with jazz hands", "in musical-theatre style",
                    "dramatically, like in a show", "like a stage performer"],
        "people": ["a musical performer", "a stage actor", "a broadway performer", "a showman", "a performer",
                   "a musical theatre actor", "an opera singer", "an entertainer on stage"],
        "states": ["as if in a musical number", "like the star of a broadway show", "putting on a big show"],
    },
    "normal": {
        "adverbs": ["normally", "in an ordinary way", "ordinarily", "plainly", "neutrally", "naturally",
                    "in a normal manner", "in a standard way", "as usual", "without any particular style",
                    "typically", "in an everyday way", "in a regular way", "in a neutral style", "casually",
                    "in a plain way", "like anyone would", "like any other day",
                    "with nothing special about it", "in an average way", "just regularly",
                    "in a standard manner", "the usual way"],
        "people": ["an ordinary person", "an average person", "a normal person", "a regular person",
                   "an everyday person", "an average joe", "an everyday guy", "a typical person",
                   "an ordinary passer-by"],
        "states": ["in a completely ordinary way", "nothing special about it", "just like any other day",
                   "plain and simple", "in an everyday manner"],
    },
    "not-confident": {
        "adverbs": ["timidly", "shyly", "nervously", "hesitantly", "unsurely", "insecurely", "meekly",
                    "sheepishly", "awkwardly", "self-consciously", "diffidently", "bashfully", "anxiously",
                    "fearfully", "with low confidence", "tentatively", "without confidence"],
        "people": ["an unconfident person", "a timid person", "a shy person", "a nervous man",
                   "an insecure woman", "a bashful boy", "a hesitant person", "an anxious person",
                   "a meek person"],
        "states": ["unsure of themselves", "nervous and shy", "lacking confidence", "afraid of being noticed"],
    },
    "proud": {
        "adverbs": ["proudly", "with pride", "haughtily", "arrogantly", "pompously", "majestically",
                    "with the head held high", "with the chest out", "with dignity", "regally", "triumphantly",
                    "boastfully", "smugly", "lordly", "self-importantly"],
        "people": ["a proud person", "a proud man", "a haughty woman", "an arrogant nobleman", "a king",
                   "a queen", "a pompous official", "a dignified aristocrat", "a proud champion"],
        "states": ["full of pride", "head held high", "feeling like a champion", "after winning the prize"],
    },
    "sad": {
        "adverbs": ["sadly", "sorrowfully", "gloomily", "glumly", "mournfully", "dejectedly", "miserably",
                    "unhappily", "melancholically", "tearfully", "forlornly", "despondently",
                    "with a heavy heart", "crying", "grief-stricken", "downheartedly"],
        "people": ["a sad person", "a sad man", "a gloomy woman", "a heartbroken person", "a grieving widow",
                   "a depressed man", "an unhappy person", "a dejected player", "a crying person"],
        "states": ["heartbroken", "down in the dumps", "feeling blue", "in tears", "after hearing bad news"],
    },
    "youthful": {
        "adverbs": ["youthfully", "in a youthful way", "like a young person", "with youthful energy",
                    "boyishly", "with the ease of youth", "like a teenager", "in a young style",
                    "with youthful bounce", "light on the feet like a young person", "carefree", "like a teen",
                    "with youthful vigour", "like a student", "with the freshness of youth"],
        "people": ["a youthful person", "a young person", "a teenager", "a teen", "a young man",
                   "a young woman", "a youth", "an adolescent", "a college student", "a young adult",
                   "a high-schooler", "a young lad", "a student", "a young guy", "a teenage boy",
                   "a teenage girl", "a twenty-year-old", "a university student", "a young athlete",
                   "a skateboarder", "a young woman in her twenties"],
        "states": ["young and carefree", "in the prime of youth", "on summer vacation from college",
                   "fresh out of high school", "still in the teens"],
    },
}

SUBJECTS: list[str] = [
    "a person", "someone", "somebody", "a man", "a woman", "he", "she", "the character",
    "the player", "a guy", "the avatar", "an adult", "the actor", "my character", "they", "a human",
    "the hero", "a stranger", "the npc", "a boy", "a girl", "the protagonist", "a villager", "a worker",
    "the subject", "this person", "i", "you", "we", "an individual", "the model", "a pedestrian",
]

SCENES: list[str] = [
    "in the park", "on the street", "at night", "in the rain", "after work", "in the office",
    "on a sunny day", "near the door", "in front of the house", "for a while", "at the station",
    "in the kitchen", "in the garden", "on the stage", "in the hallway", "at the mall", "in the forest",
    "on the beach", "by the river", "in the morning", "at school", "in the living room", "outside",
    "in the snow", "at the market", "on the sidewalk", "in the gym", "at the airport", "in the courtyard",
    "on a busy road", "in a video game", "during the party", "at sunset", "in the classroom",
    "to the bus stop", "down the hallway", "across the parking lot", "toward the door", "to the store",
    "on the way home", "across the yard", "in the crowd", "at the concert", "during recess",
    "on the train platform", "in a small village", "near the fountain", "on a cold winter morning",
    "for the camera", "in a cutscene", "at the end of the level", "on the pier", "in the lobby",
    "at the bakery", "on the bridge", "in the library", "at the bowling alley", "across the plaza",
]

UNSUPPORTED: dict[str, list[str]] = {
    "backflip": ["does a backflip", "flips backwards", "a back somersault", "performs a back tuck"],
    "somersault": ["does a somersault", "flips forward", "tumbles head over heels", "a front flip"],
    "cartwheel": ["does a cartwheel", "cartwheels across the floor", "a round-off"],
    "handstand": ["does a handstand", "stands on the hands", "walks on the hands", "a headstand"],
    "swimming": ["swims", "swimming", "does the breaststroke", "swims freestyle", "treads water", "does the butterfly stroke"],
    "diving": ["dives into the water", "dives off a board", "a swan dive"],
    "sitting down": ["sits down", "sitting on a chair", "takes a seat", "sits on the floor", "is seated at a desk",
                     "sits cross-legged"],
    "lying down": ["lies down", "lying on the floor", "lies on the back", "reclines on a sofa", "lies on the stomach"],
    "sleeping": ["sleeps", "takes a nap", "dozes off", "falls asleep"],
    "standing up": ["stands up from a chair", "gets up off the floor", "rises from a seat", "gets out of bed"],
    "crawling": ["crawls", "crawling on hands and knees", "creeps on all fours", "army crawls"],
    "kneeling": ["kneels", "kneeling", "gets down on one knee", "kneels to pray"],
    "squatting": ["squats", "does squats", "crouches down", "squats low"],
    "jumping jacks": ["does jumping jacks", "star jumps", "a set of jumping jacks"],
    "jumping": ["jumps up and down", "hops in place", "leaps into the air", "jumps forward", "does a high jump",
                "does a long jump", "hops on one leg", "skips along", "bounces on a trampoline", "jumps over a puddle"],
    "push-ups": ["does push-ups", "does press-ups", "push-ups on the floor"],
    "sit-ups": ["does sit-ups", "does crunches", "abdominal crunches"],
    "pull-ups": ["does pull-ups", "chin-ups on a bar", "hangs from a bar"],
    "climbing": ["climbs a ladder", "climbs a rope", "climbs a wall", "climbs a tree", "scales a cliff",
                 "climbs up the stairs", "goes down the stairs", "climbs over a fence"],
    "falling": ["falls down", "trips and falls", "collapses to the ground", "faints", "slips on ice"],
    "rolling": ["rolls on the floor", "does a forward roll", "rolls down a hill"],
    "throwing": ["throws a ball", "pitches a baseball", "tosses a frisbee", "throws a javelin", "throws a stone",
                 "bowls a cricket ball"],
    "catching": ["catches a ball", "catches a frisbee"],
    "picking up": ["picks something up from the floor", "bends down to pick up a box", "lifts a box",
                   "picks up a bag"],
    "carrying": ["carries a box", "carries a heavy bag", "carries a child"],
    "pushing and pulling": ["pushes a cart", "pushes a heavy door", "pulls a rope", "drags a sack", "pushes a car"],
    "weightlifting": ["lifts weights", "does a deadlift", "bench presses", "curls a dumbbell", "lifts a barbell"],
    "ball sports": ["shoots a basketball", "dribbles a basketball", "swings a golf club", "swings a baseball bat",
                    "serves a tennis ball", "hits a tennis forehand", "plays volleyball", "rolls a bowling ball",
                    "heads a football"],
    "riding": ["rides a bicycle", "cycles", "rides a horse", "rides a motorbike", "drives a car", "pedals a bike"],
    "board sports": ["skis", "snowboards", "surfs", "ice skates", "roller skates", "rides a skateboard"],
    "stretching": ["does yoga", "stretches the hamstrings", "touches the toes", "does the splits",
                   "holds a yoga pose", "stretches on a mat"],
    "playing an instrument": ["plays the guitar", "plays the piano", "plays the drums", "plays the violin",
                              "plays the trumpet"],
    "eating and drinking": ["eats", "eats a sandwich", "drinks water", "sips coffee", "drinks from a bottle"],
    "household chores": ["sweeps the floor", "mops the floor", "vacuums", "washes the dishes", "irons a shirt",
                         "folds laundry", "cooks dinner", "chops vegetables"],
    "grooming": ["brushes the teeth", "combs the hair", "washes the hands", "puts on a jacket", "ties the shoes"],
    "office work": ["types on a keyboard", "writes a letter", "reads a book", "talks on the phone",
                    "takes a selfie", "writes on a whiteboard"],
    "digging": ["digs with a shovel", "shovels snow", "rakes leaves"],
    "painting": ["paints a wall", "paints on a canvas", "draws a picture"],
    "juggling": ["juggles", "juggles balls"],
    "breakdancing": ["spins on the head", "does a headspin", "does a windmill on the floor"],
    "hugging": ["hugs someone", "embraces a friend"],
    "clapping": ["claps the hands", "applauds"],
    "shooting": ["aims a rifle", "fires a pistol", "shoots an arrow with a bow", "draws a bow and arrow"],
    "fishing": ["casts a fishing line", "reels in a fish"],
    "rowing": ["rows a boat", "paddles a canoe"],
    "praying": ["prays with hands together", "meditates", "kneels in prayer"],
    "pole vault": ["pole vaults", "vaults over a bar"],
    "skipping rope": ["skips rope", "jumps rope"],
    "hurdling": ["jumps over hurdles", "clears a hurdle"],
}


def content_phrases() -> list[tuple[str, str]]:
    """(phrase, content) pairs of :data:`CONTENT_LEXICON`."""
    return [(p, c) for c, ps in CONTENT_LEXICON.items() for p in ps]


def unsupported_phrases() -> list[tuple[str, str]]:
    """(phrase, concept) pairs of :data:`UNSUPPORTED`."""
    return [(p, c) for c, ps in UNSUPPORTED.items() for p in ps]


def compose(n: int, seed: int = 0, unsupported_share: float = 0.25, style_share: float = 0.5,
            scene_share: float = 0.3) -> list[dict]:
    """``n`` sentences composed from the lexicons: subject (or a style's person, or none = an
    imperative/fragment) + action phrase (a content's, or with ``unsupported_share`` an
    unsupported concept's) + the style's carrier (a person as subject, an adverb before or after,
    or a state clause before or after; a fifth of styled sentences get a second carrier) +
    optional scene.

    Returns dicts {"text", "content" (label, or None for unsupported), "style" (label or None when
    no style is named), "concept" (unsupported concept or None)}. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    cp, up = content_phrases(), unsupported_phrases()
    styles = sorted(STYLE_LEXICON)

    def pick(xs: list[str]) -> str:
        return xs[rng.integers(len(xs))]

    out = []
    for _ in range(n):
        unsupported = rng.random() < unsupported_share
        phrase, label = (up if unsupported else cp)[rng.integers(len(up if unsupported else cp))]
        style = styles[rng.integers(len(styles))] if rng.random() < style_share else None
        subj, before, after = None, [], []
        if style is not None:
            lex = STYLE_LEXICON[style]
            carriers = ["people", "adverbs", "states"]
            first = carriers[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
            chosen = [first]
            if rng.random() < 0.2:
                chosen.append([c for c in carriers if c != first][rng.integers(2)])
            for kind in chosen:
                if kind == "people":
                    subj = pick(lex["people"])
                else:
                    text = pick(lex[kind])
                    if rng.random() < (0.3 if kind == "adverbs" else 0.5):
                        before.append(text)
                    else:
                        after.append((", " if kind == "states" else "") + text)
        if subj is None and rng.random() < 0.75:
            subj = pick(SUBJECTS)
        words = [b + "," for b in before] + ([subj] if subj else []) + [phrase]
        words += after
        if rng.random() < scene_share:
            scene = pick(SCENES)
            words = ([scene + ","] + words) if rng.random() < 0.4 else (words + [scene])
        text = " ".join(words).replace(" , ", ", ")
        out.append({"text": text, "content": None if unsupported else label, "style": style,
                    "concept": label if unsupported else None})
    return out
