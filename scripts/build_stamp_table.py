"""Regenerate captum_hint/datasets/stamps.json: Tux Paint photo stamps -> WordNet -> ImageNet-1k.

The synset of each stamp is curated by hand below (photographs only: no
cartoon folders, no SVG clip art, no toys or drawings). The ImageNet-1k label
is derived: the stamp's own class if it is one, else a class under the deepest
ancestor of the synset that covers ImageNet classes (ties: the lowest class
index). Concepts at or above that ancestor are therefore exact.

    .venv/bin/python scripts/build_stamp_table.py
"""

import json
from pathlib import Path

from captum_hint.concepts.hierarchy import ConceptHierarchy
from captum_hint.concepts.wordnet import load_wordnet

CURATED = {
    "animals/amphibians/frog.png": "frog.n.01",
    "animals/amphibians/frog-1.png": "frog.n.01",
    "animals/birds/adelaide-rosella.png": "parrot.n.01",
    "animals/birds/albino_peahen.png": "peafowl.n.01",
    "animals/birds/blackbird.png": "thrush.n.03",
    "animals/birds/chicken_profile.png": "chicken.n.02",
    "animals/birds/crow.png": "crow.n.01",
    "animals/birds/crowned_crane.png": "crane.n.05",
    "animals/birds/cuckoo.png": "cuckoo.n.02",
    "animals/birds/drake.png": "drake.n.02",
    "animals/birds/duck.png": "duck.n.01",
    "animals/birds/gander.png": "gander.n.01",
    "animals/birds/guineafowl.png": "guinea_fowl.n.01",
    "animals/birds/helmeted_guineafowl.png": "guinea_fowl.n.01",
    "animals/birds/hen.png": "hen.n.02",
    "animals/birds/heron_greatblue.png": "great_blue_heron.n.01",
    "animals/birds/heron_greatblue_flying.png": "great_blue_heron.n.01",
    "animals/birds/lark.png": "lark.n.03",
    "animals/birds/little-penguin.png": "penguin.n.01",
    "animals/birds/magellanic_penguin.png": "penguin.n.01",
    "animals/birds/magpie.png": "magpie.n.01",
    "animals/birds/nandou.png": "rhea.n.02",
    "animals/birds/ostrich.png": "ostrich.n.02",
    "animals/birds/owl.png": "owl.n.01",
    "animals/birds/peacock.png": "peacock.n.02",
    "animals/birds/pelican.png": "pelican.n.01",
    "animals/birds/penguin.png": "penguin.n.01",
    "animals/birds/pigeon.png": "pigeon.n.01",
    "animals/birds/pink_flamingo.png": "flamingo.n.01",
    "animals/birds/quetzal.png": "quetzal.n.02",
    "animals/birds/rainbow-lorikeet.png": "lorikeet.n.01",
    "animals/birds/rooster.png": "cock.n.04",
    "animals/birds/seagull.png": "gull.n.02",
    "animals/birds/silver-gull.png": "gull.n.02",
    "animals/birds/tucan.png": "toucan.n.01",
    "animals/birds/turkey.png": "turkey.n.01",
    "animals/birds/vulture.png": "vulture.n.01",
    "animals/fish/bluegroper.png": "wrasse.n.01",
    "animals/fish/butterflyfish.png": "butterfly_fish.n.01",
    "animals/fish/coraltrout.png": "grouper.n.02",
    "animals/fish/dolphinfish.png": "dolphinfish.n.02",
    "animals/fish/lionfish.png": "lionfish.n.01",
    "animals/fish/lobster.png": "lobster.n.02",
    "animals/fish/moonwrasse.png": "wrasse.n.01",
    "animals/fish/seahorse.png": "sea_horse.n.02",
    "animals/fish/shrimp.png": "shrimp.n.03",
    "animals/fish/stripedfish.png": "fish.n.01",
    "animals/insects/Brown_slug.png": "slug.n.07",
    "animals/insects/Woodlouse.png": "woodlouse.n.01",
    "animals/insects/fly.png": "fly.n.01",
    "animals/insects/grasshopper.png": "grasshopper.n.01",
    "animals/insects/hornet.png": "hornet.n.01",
    "animals/insects/hoverfly.png": "fly.n.01",
    "animals/insects/mantis.png": "mantis.n.01",
    "animals/insects/xanthia.png": "moth.n.01",
    "animals/lizards/iguana.png": "iguana.n.01",
    "animals/mammals/apes/chimp.png": "chimpanzee.n.01",
    "animals/mammals/apes/gorilla.png": "gorilla.n.01",
    "animals/mammals/apes/tamarin_emperor.png": "tamarin.n.01",
    "animals/mammals/aquatic/dolphin.png": "dolphin.n.02",
    "animals/mammals/aquatic/orca.png": "killer_whale.n.01",
    "animals/mammals/aquatic/otter.png": "otter.n.02",
    "animals/mammals/aquatic/sea_lion.png": "sea_lion.n.01",
    "animals/mammals/aquatic/whale.png": "whale.n.02",
    "animals/mammals/badger.png": "badger.n.02",
    "animals/mammals/bears/bear.png": "bear.n.01",
    "animals/mammals/bears/european-bear.png": "brown_bear.n.01",
    "animals/mammals/bovines/bison.png": "bison.n.01",
    "animals/mammals/bovines/bull.png": "bull.n.01",
    "animals/mammals/bovines/cow.png": "cow.n.01",
    "animals/mammals/bovines/cow_white.png": "cow.n.01",
    "animals/mammals/bovines/gnu-baby-stand.png": "gnu.n.01",
    "animals/mammals/bovines/gnu-baby.png": "gnu.n.01",
    "animals/mammals/bovines/gnu-sitting.png": "gnu.n.01",
    "animals/mammals/bovines/gnu-stand.png": "gnu.n.01",
    "animals/mammals/bovines/goat.png": "goat.n.01",
    "animals/mammals/bovines/indian_blackbuck.png": "blackbuck.n.01",
    "animals/mammals/bovines/mountaingoat.png": "mountain_goat.n.01",
    "animals/mammals/bovines/ram.png": "ram.n.05",
    "animals/mammals/bovines/sheep.png": "sheep.n.01",
    "animals/mammals/bovines/sheep_lamb.png": "sheep.n.01",
    "animals/mammals/bovines/yak.png": "yak.n.02",
    "animals/mammals/bovines/zebu.png": "zebu.n.01",
    "animals/mammals/camel/camel.png": "bactrian_camel.n.01",
    "animals/mammals/camel/dromedary.png": "dromedary.n.01",
    "animals/mammals/cats/lion-2.png": "lion.n.01",
    "animals/mammals/cats/lion.png": "lion.n.01",
    "animals/mammals/cats/tiger.png": "tiger.n.02",
    "animals/mammals/cats/tiger_sumatran.png": "tiger.n.02",
    "animals/mammals/deer/caribou.png": "caribou.n.01",
    "animals/mammals/deer/deer.png": "deer.n.01",
    "animals/mammals/deer/doe.png": "deer.n.01",
    "animals/mammals/deer/wapiti.png": "wapiti.n.01",
    "animals/mammals/dogs/dingo.png": "dingo.n.01",
    "animals/mammals/dogs/dog.png": "malamute.n.01",
    "animals/mammals/dogs/fox.png": "fox.n.01",
    "animals/mammals/echidna.png": "echidna.n.02",
    "animals/mammals/elephant.png": "elephant.n.01",
    "animals/mammals/equines/donkey.png": "ass.n.03",
    "animals/mammals/equines/donkey_eating.png": "ass.n.03",
    "animals/mammals/equines/horse.png": "horse.n.01",
    "animals/mammals/equines/zebra.png": "zebra.n.01",
    "animals/mammals/ferret.png": "ferret.n.02",
    "animals/mammals/giraffe.png": "giraffe.n.01",
    "animals/mammals/hedgehog.png": "hedgehog.n.02",
    "animals/mammals/hippopotamus.png": "hippopotamus.n.01",
    "animals/mammals/pig.png": "hog.n.03",
    "animals/mammals/pig_golden.png": "hog.n.03",
    "animals/mammals/pig_golden2.png": "hog.n.03",
    "animals/mammals/rabbit_little.png": "rabbit.n.01",
    "animals/mammals/rhino_black.png": "black_rhinoceros.n.01",
    "animals/mammals/rodents/beaver.png": "beaver.n.07",
    "animals/mammals/rodents/capybara.png": "capybara.n.01",
    "animals/mammals/rodents/marmot.png": "marmot.n.01",
    "animals/mammals/rodents/mouse.png": "mouse.n.01",
    "animals/mammals/rodents/rabbit-2.png": "rabbit.n.01",
    "animals/mammals/rodents/rabbit.png": "rabbit.n.01",
    "animals/mammals/rodents/rat.png": "rat.n.01",
    "animals/mammals/rodents/squirrel.png": "squirrel.n.01",
    "animals/mammals/wildboar.png": "wild_boar.n.01",
    "animals/marsupials/kangaroo.png": "kangaroo.n.01",
    "animals/marsupials/koala.png": "koala.n.01",
    "animals/marsupials/wombat.png": "wombat.n.01",
    "animals/shellfish/abalone.png": "abalone.n.01",
    "animals/shellfish/murray-mussel.png": "mussel.n.02",
    "vehicles/auto/beetle.png": "car.n.01",
    "vehicles/auto/sedan.png": "sedan.n.01",
    "vehicles/auto/sportscar2.png": "sports_car.n.01",
    "vehicles/auto/truck.png": "pickup.n.01",
    "vehicles/construction/dumper.png": "dump_truck.n.01",
    "vehicles/construction/dumper_mirror.png": "dump_truck.n.01",
    "vehicles/cycle/pink_tricycle.png": "tricycle.n.01",
    "vehicles/emergency/firetruck.png": "fire_engine.n.01",
    "vehicles/emergency/sedan_police.png": "cruiser.n.01",
    "vehicles/flight/balloon360.png": "balloon.n.01",
    "vehicles/flight/planes/747.png": "airliner.n.01",
    "vehicles/garbagetruck.png": "garbage_truck.n.01",
    "vehicles/masstransit/green_korean_bus.png": "bus.n.01",
    "vehicles/race/indycar.png": "racer.n.02",
}

TARGET = Path(__file__).resolve().parents[1] / "captum_hint" / "datasets" / "stamps.json"

if __name__ == "__main__":
    wordnet = load_wordnet()
    imagenet = ConceptHierarchy.imagenet()
    rows = []
    for path, name in CURATED.items():
        synset = wordnet.synset(name)
        line = [synset] + sorted(synset.closure(lambda s: s.hypernyms()), key=lambda s: -s.min_depth())
        covering = next(s for s in line if s.name() in imagenet)
        leaves = imagenet.leaves_under(covering.name())
        rows.append({"path": path, "synset": name, "via": covering.name(), "label": leaves[0],
                     "imagenet": imagenet.leaves[leaves[0]]})
    TARGET.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    exact = sum(r["via"] == r["synset"] for r in rows)
    print(f"wrote {TARGET}: {len(rows)} stamps, {exact} exact ImageNet classes")
