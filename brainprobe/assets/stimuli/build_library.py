"""Rebuild the vendored photos of the stimulus library from Debian packages (maintainer tool).

Not imported by brainprobe. Run once with the packages unpacked under ``ROOT``::

    mkdir -p /tmp/debphotos && cd /tmp/debphotos
    apt-get download opencv-doc lomiri-wallpapers-16.04
    for f in *.deb; do dpkg -x "$f" "x_${f%%_*}"; done
    python brainprobe/assets/stimuli/build_library.py /tmp/debphotos

Each photo is resized so its short side is ``SHORT_SIDE`` px (Lanczos) and saved as JPEG
quality 90; ``photos.csv`` lists every photo of the library (vendored and package-shipped) with
its source, licence, attribution and fixed split.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from PIL import Image

SHORT_SIDE = 288
HERE = Path(__file__).resolve().parent

OPENCV = "x_opencv-doc/usr/share/doc/opencv-doc"
OPENCV_LICENSE = "Apache-2.0 AND BSD-3-Clause"
OPENCV_ATTR = (
    "OpenCV project sample/documentation image (Debian opencv 4.6.0+dfsg-12, opencv-doc; "
    "licence per debian/copyright 'Files: *')"
)
# (photo id, path under the unpacked opencv-doc, crop box (l, t, r, b) as fractions or None)
OPENCV_PHOTOS: list[tuple[str, str, tuple[float, float, float, float] | None]] = [
    ("opencv_plant", "examples/alphamat/input_images/plant.jpg", None),
    ("opencv_aero1", "examples/data/aero1.jpg", None),
    ("opencv_aloe", "examples/data/aloeL.jpg", None),
    ("opencv_apple", "examples/data/apple.jpg", None),
    ("opencv_baboon", "examples/data/baboon.jpg", None),
    ("opencv_basketball", "examples/data/basketball1.png", None),
    ("opencv_circuit_board", "examples/data/board.jpg", None),
    ("opencv_box_in_scene", "examples/data/box_in_scene.png", None),
    ("opencv_hotel_building", "examples/data/building.jpg", None),
    ("opencv_butterfly", "examples/data/butterfly.jpg", None),
    ("opencv_dog", "examples/data/chicky_512.png", None),
    ("opencv_notebook", "examples/data/ela_original.jpg", None),
    ("opencv_fruits", "examples/data/fruits.jpg", None),
    ("opencv_graffiti", "examples/data/graf1.png", None),
    ("opencv_yellow_building", "examples/data/home.jpg", None),
    ("opencv_books_boxes", "examples/data/left.jpg", None),
    ("opencv_leuven_street", "examples/data/leuvenA.jpg", None),
    ("opencv_car_rear", "examples/data/licenseplate_motion.jpg", None),
    ("opencv_orange", "examples/data/orange.jpg", None),
    ("opencv_rubber_whale", "examples/data/rubberwhale1.png", None),
    ("opencv_smarties", "examples/data/smarties.png", None),
    ("opencv_squirrel", "examples/data/squirrel_cls.jpg", None),
    ("opencv_desk_objects", "examples/data/stuff.jpg", None),
    ("opencv_monarch", "examples/dnn_superres/butterfly.png", None),
    ("opencv_robin", "examples/hfs/data/000.jpg", None),
    ("opencv_lake", "examples/hfs/data/001.jpg", None),
    ("opencv_lone_tree", "examples/hfs/data/002.jpg", None),
    ("opencv_brick_house", "examples/reg/home.png", None),
    ("opencv_sign_parking", "examples/text/scenetext01.jpg", None),
    ("opencv_sign_sports", "examples/text/scenetext02.jpg", None),
    ("opencv_copy_centre", "examples/text/scenetext03.jpg", None),
    ("opencv_generator", "examples/text/scenetext04.jpg", None),
    ("opencv_roadside", "examples/text/scenetext05.jpg", None),
    ("opencv_pub", "examples/text/scenetext06.jpg", None),
    ("opencv_hotel_sign", "examples/text/scenetext_segmented_word01.jpg", None),
    ("opencv_shop_sign", "examples/text/scenetext_segmented_word02.jpg", None),
    ("opencv_beer_sign", "examples/text/scenetext_segmented_word04.jpg", None),
    ("opencv_face_man1", "opencv4/html/227943776_1.jpg", None),
    ("opencv_face_man2", "opencv4/html/230501201_1.jpg", None),
    ("opencv_glider", "opencv4/html/Template_Matching_Original_Image.jpg", None),
    ("opencv_bus", "opencv4/html/bus_det.jpg", None),
    ("opencv_kitten", "opencv4/html/cat_det.jpg", None),
    ("opencv_coins", "opencv4/html/water_coins.jpg", None),
    ("opencv_corridor", "opencv4/html/corridor_fld.jpg", None),
    ("opencv_lens_cap", "opencv4/html/detect_test1.jpg", None),
    ("opencv_street", "opencv4/html/detect_test2.jpg", None),
    ("opencv_office_tower", "opencv4/html/feature_building.jpg", None),
    ("opencv_hand", "opencv4/html/handSrc.jpg", None),
    ("opencv_newspaper", "opencv4/html/newspaper.jpg", None),
    ("opencv_speckle", "opencv4/html/pattern_img.jpg", None),
    ("opencv_heath", "opencv4/html/retina_TreeHdr_small.jpg", None),
    ("opencv_space_shuttle", "opencv4/html/space_shuttle.jpg", None),
    ("opencv_lecture_room", "opencv4/html/studentsSample_input.jpg", None),
    ("opencv_breakfast_table", "opencv4/html/yolo.jpg", None),
    ("opencv_peppers", "opencv4/html/bicubicOutput.jpg", None),
    ("opencv_rock_texture", "opencv4/html/gst_input.jpg", None),
    ("opencv_church_interior", "opencv4/html/ldr.png", None),
    ("opencv_timber_house", "opencv4/html/Harris_Detector_Original_Image.jpg", (0.0, 0.1, 1.0, 1.0)),
    ("opencv_river_valley", "opencv4/html/Warp_Affine_Tutorial_Original_Image.jpg", (0.0, 0.1, 1.0, 1.0)),
]

LOMIRI = "x_lomiri-wallpapers-16.04/usr/share/backgrounds"
# (photo id, file, licence, author); only the CC0 / CC-BY ones of the package (not CC-BY-SA)
LOMIRI_PHOTOS: list[tuple[str, str, str, str]] = [
    ("lomiri_aitzgorri", "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("lomiri_friends", "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("lomiri_life", "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("lomiri_picos_de_europa", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("lomiri_sunset", "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("lomiri_picture_0b", "Picture_0B_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("lomiri_picture_1a", "Picture_1A_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("lomiri_wine", "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede, 2018"),
    ("lomiri_seeding", "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt, 2018"),
]

# Package-shipped photos, read at run time from the installed package (never copied here).
# (photo id, package, file inside the package's data folder, licence, attribution)
PACKAGE_PHOTOS: list[tuple[str, str, str, str, str]] = [
    ("skimage_astronaut", "skimage", "astronaut.png", "Public domain", "NASA (Eileen Collins), via scikit-image"),
    ("skimage_camera", "skimage", "camera.png", "CC0-1.0", "Lav Varshney, via scikit-image"),
    ("skimage_coffee", "skimage", "coffee.png", "CC0-1.0", "Rachel Michetti, via scikit-image"),
    ("skimage_chelsea", "skimage", "chelsea.png", "CC0-1.0", "Stefan van der Walt, via scikit-image"),
    ("skimage_rocket", "skimage", "rocket.jpg", "Public domain", "SpaceX, via scikit-image"),
    ("skimage_motorcycle", "skimage", "motorcycle_left.png", "Middlebury 2014 stereo dataset terms", "Scharstein et al., Middlebury College, via scikit-image"),
    ("skimage_coins", "skimage", "coins.png", "No known copyright restrictions", "Greek coins from Pompeii, via scikit-image"),
    ("skimage_moon", "skimage", "moon.png", "No known copyright restrictions", "via scikit-image"),
    ("skimage_grass", "skimage", "grass.png", "CC0-1.0", "CC0Textures, via scikit-image"),
    ("skimage_gravel", "skimage", "gravel.png", "CC0-1.0", "CC0Textures (Gravel04), via scikit-image"),
    ("skimage_brick", "skimage", "brick.png", "CC0-1.0", "CC0Textures (Bricks25), via scikit-image"),
    ("skimage_clock", "skimage", "clock_motion.png", "Public domain", "Stefan van der Walt, via scikit-image"),
    ("sklearn_china", "sklearn", "china.jpg", "CC-BY-2.0", "danielbuechele (Flickr), via scikit-learn"),
    ("sklearn_flower", "sklearn", "flower.jpg", "CC-BY-2.0", "vultilion (Flickr), via scikit-learn"),
    ("matplotlib_grace_hopper", "matplotlib", "grace_hopper.jpg", "Public domain", "US Navy photograph of Grace Hopper, via matplotlib"),
] + [
    (f"foolbox_{name.split('.')[0]}", "foolbox", name, "ImageNet terms (research use)", "ImageNet validation photo, via foolbox")
    for name in [
        "imagenet_00_243.jpg", "imagenet_01_559.jpg", "imagenet_02_438.jpg", "imagenet_03_990.jpg",
        "imagenet_04_949.jpg", "imagenet_05_853.jpg", "imagenet_06_609.jpg", "imagenet_07_609.jpg",
        "imagenet_08_915.jpg", "imagenet_09_455.jpg", "imagenet_10_541.jpg", "imagenet_11_630.jpg",
        "imagenet_12_741.jpg", "imagenet_13_471.jpg", "imagenet_14_129.jpg", "imagenet_15_99.jpg",
        "imagenet_16_251.jpg", "imagenet_17_22.jpg", "imagenet_18_317.jpg", "imagenet_19_305.jpg",
    ]
]


def _split(photo_id: str, index: int) -> str:
    """Fixed split: foolbox's ImageNet photos are eval-only; of the rest every third is eval."""
    if photo_id.startswith("foolbox_"):
        return "eval"
    return "eval" if index % 3 == 2 else "train"


def _save(img: Image.Image, out: Path) -> None:
    img = img.convert("RGB")
    w, h = img.size
    scale = SHORT_SIDE / min(w, h)
    if scale < 1:
        img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    img.save(out, "JPEG", quality=90, optimize=True)


def main(root: Path) -> None:
    rows: list[dict[str, str]] = []
    out_dir = HERE / "photos"
    out_dir.mkdir(exist_ok=True)
    vendored = []
    for pid, rel, box in OPENCV_PHOTOS:
        img = Image.open(root / OPENCV / rel)
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        if box is not None:
            w, h = img.size
            img = img.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
        vendored.append((pid, img, "debian:opencv-doc", rel, OPENCV_LICENSE, OPENCV_ATTR))
    for pid, name, lic, author in LOMIRI_PHOTOS:
        img = Image.open(root / LOMIRI / name)
        attr = f"{author}, '{name}' (Debian lomiri-wallpapers-16.04 20.04.0-2)"
        vendored.append((pid, img, "debian:lomiri-wallpapers-16.04", name, lic, attr))
    i = 0
    for pid, img, source, original, lic, attr in vendored:
        _save(img, out_dir / f"{pid}.jpg")
        rows.append(dict(photo=pid, kind="vendored", source=source, file=f"photos/{pid}.jpg",
                         original=original, license=lic, attribution=attr, split=_split(pid, i)))
        i += 1
    for pid, package, name, lic, attr in PACKAGE_PHOTOS:
        rows.append(dict(photo=pid, kind="package", source=f"package:{package}", file=name,
                         original=name, license=lic, attribution=attr, split=_split(pid, i)))
        i += 1
    with open(HERE / "photos.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} photos ({len(vendored)} vendored) -> {HERE / 'photos.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
