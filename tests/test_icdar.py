"""icdar.py: ICDAR 2015 files and the Task 4.1 evaluation, on cases worked out by hand."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import icdar


def rect(x0, y0, x1, y1):
    """Axis-aligned quad, clockwise on screen from the top-left point."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def quads(*rects):
    return np.array(rects, dtype=np.float32).reshape(-1, 4, 2)


def score(gt, det, dont_care=None):
    gt = quads(*gt)
    dont_care = np.zeros(len(gt), bool) if dont_care is None else np.array(dont_care)
    return icdar.evaluate_image(gt, dont_care, quads(*det))


def figures(result):
    return pytest.approx((result.precision, result.recall, result.hmean))


# --------------------------------------------------------------------------- evaluation


def test_perfect():
    result = score([rect(0, 0, 100, 20), rect(0, 50, 80, 70)], [rect(0, 50, 80, 70), rect(0, 0, 100, 20)])
    assert figures(result) == (1.0, 1.0, 1.0)
    assert result.pairs == ((0, 1), (1, 0))
    assert result.all_correct


def test_one_miss():
    # 1 of 2 found: P = 1/1, R = 1/2, H = 2 * 1 * 0.5 / 1.5 = 2/3.
    result = score([rect(0, 0, 100, 20), rect(0, 50, 80, 70)], [rect(0, 0, 100, 20)])
    assert figures(result) == (1.0, 0.5, 2 / 3)
    assert not result.all_correct


def test_one_false_positive():
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 20), rect(200, 200, 260, 230)])
    assert figures(result) == (0.5, 1.0, 2 / 3)
    assert not result.all_correct


def test_iou_must_exceed_one_half():
    # A half-height detection: intersection 1000, union 2000, IoU exactly 0.5 -> no match.
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 10)])
    assert figures(result) == (0.0, 0.0, 0.0)
    # 11 of 20 rows: IoU 1100 / 2000 = 0.55 -> match.
    assert score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 11)]).matched == 1


def test_split_detection_matches_nothing():
    # Two halves of a 100x20 word: each IoU 1000 / 2000 = 0.5, not > 0.5.
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 50, 20), rect(50, 0, 100, 20)])
    assert (result.matched, result.gt_care, result.det_care) == (0, 1, 2)
    assert figures(result) == (0.0, 0.0, 0.0)


def test_merged_detection_matches_at_most_one():
    # One box over two words: IoU with the 60-wide word 1200 / 2000 = 0.6 (match),
    # with the 30-wide word 600 / 2000 = 0.3. P = 1/1, R = 1/2.
    result = score([rect(0, 0, 60, 20), rect(70, 0, 100, 20)], [rect(0, 0, 100, 20)])
    assert result.pairs == ((0, 0),)
    assert figures(result) == (1.0, 0.5, 2 / 3)


def test_protocol_order_takes_first_detection_not_best():
    # gt 0 pairs with det 0 (IoU 0.55, first in file order) although det 1 is exact;
    # det 1 is then left over: P = 1/2, R = 1/1.
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 11), rect(0, 0, 100, 20)])
    assert result.pairs == ((0, 0),)
    assert figures(result) == (0.5, 1.0, 2 / 3)


def test_dont_care_detection_is_ignored():
    # det 1 lies on the ### region: ignored, so P = 1/1 and R = 1/1 (the ### is not counted).
    result = score([rect(0, 0, 100, 20), rect(0, 50, 100, 70)], [rect(0, 0, 100, 20), rect(0, 50, 100, 70)],
                   dont_care=[False, True])
    assert (result.gt_care, result.det_care, result.det_dont_care) == (1, 1, (1,))
    assert figures(result) == (1.0, 1.0, 1.0)
    assert result.all_correct


def test_dont_care_needs_more_than_half_of_the_detection():
    gt, dont_care = [rect(0, 0, 100, 20), rect(0, 50, 100, 70)], [False, True]
    # 10x10 detection, 6 of its 10 columns inside the ### region: 60% -> ignored.
    assert score(gt, [rect(0, 0, 100, 20), rect(94, 50, 104, 60)], dont_care).det_care == 1
    # 4 of 10 columns inside: 40% -> a false positive, P = 1/2.
    result = score(gt, [rect(0, 0, 100, 20), rect(96, 50, 106, 60)], dont_care)
    assert result.det_care == 2
    assert figures(result) == (0.5, 1.0, 2 / 3)


def test_dont_care_ground_truth_never_matches():
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 20)], dont_care=[True])
    assert (result.matched, result.gt_care, result.det_care) == (0, 0, 0)
    assert figures(result) == (1.0, 1.0, 1.0)


def test_empty_ground_truth():
    assert figures(score([], [])) == (1.0, 1.0, 1.0)
    # Care detections on an image without text: P = 0, R = 1.
    assert figures(score([], [rect(0, 0, 10, 10)])) == (0.0, 1.0, 0.0)


def test_no_detections():
    result = score([rect(0, 0, 100, 20)], [])
    assert figures(result) == (0.0, 0.0, 0.0)


def test_counter_clockwise_points_score_like_clockwise():
    gt = [rect(0, 0, 100, 20), rect(0, 50, 80, 70)]
    det = [rect(2, 1, 100, 21), rect(0, 40, 80, 60)]
    clockwise = score(gt, det)
    counter = icdar.evaluate_image(quads(*gt)[:, ::-1], np.zeros(2, bool), quads(*det)[:, ::-1])
    assert (counter.matched, counter.precision, counter.recall) == (
        clockwise.matched, clockwise.precision, clockwise.recall)
    assert clockwise.matched == 1


def test_degenerate_detection_counts_as_unmatched():
    result = score([rect(0, 0, 100, 20)], [rect(0, 0, 100, 20), [[5, 5]] * 4])
    assert result.invalid_det == (1,)
    assert figures(result) == (0.5, 1.0, 2 / 3)


def test_overall_figures_from_summed_counts():
    ground_truth = {
        "a": icdar.Annotation(quads(), np.zeros(0, bool)),                   # no text, 1 det
        "b": icdar.Annotation(quads(rect(0, 0, 100, 20)), np.zeros(1, bool)),  # found
        "c": icdar.Annotation(quads(rect(0, 0, 100, 20)), np.zeros(1, bool)),  # result file missing
    }
    detections = {"a": quads(rect(0, 0, 10, 10)), "b": quads(rect(0, 0, 100, 20)), "zzz": quads()}
    result = icdar.evaluate(ground_truth, detections)
    # matched 1, care gt 2, care det 2.
    assert (result.matched, result.gt_care, result.det_care) == (1, 2, 2)
    assert (result.precision, result.recall, result.hmean) == pytest.approx((0.5, 0.5, 0.5))
    assert result.summary() == {"precision": 0.5, "recall": 0.5, "hmean": 0.5, "images": 3,
                                "images_all_correct": 1}
    assert result.summary_line() == "precision 0.500 recall 0.500 hmean 0.500; 1/3 images all correct"


def test_overall_without_any_detection_or_text_is_zero():
    # The official script: overall P and R are 0 when the summed counts are 0, even
    # though each such image scores 1.
    result = icdar.evaluate({"a": icdar.Annotation(quads(), np.zeros(0, bool))}, {})
    assert (result.precision, result.recall, result.hmean, result.images_all_correct) == (0.0, 0.0, 0.0, 1)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="gt_quads must be"):
        icdar.evaluate_image(np.zeros((2, 3, 2)), np.zeros(2, bool), quads())
    with pytest.raises(ValueError, match="gt_dont_care"):
        icdar.evaluate_image(quads(rect(0, 0, 1, 1)), np.zeros(2, bool), quads())


# --------------------------------------------------------------------------- files


def test_parse_bom_crlf_commas_quotes_and_dont_care():
    text = ('\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n'
            '493,115,519,115,519,131,493,131,[06]\r\n'
            '\r\n'
            '374,155,409,155,409,170,374,170,###\r\n'
            '1,2,3,4,5,6,7,8,"a, \\"quoted\\" one"\r\n'
            '1,2,3,4,5,6,7,8,one,two,three\r\n')
    annotation = icdar.parse_annotation_text(text, "gt_img_1.txt")
    assert annotation.quads.shape == (5, 4, 2) and annotation.quads.dtype == np.float32
    assert annotation.quads[0].tolist() == [[377, 117], [463, 117], [465, 130], [378, 130]]
    assert annotation.texts == ("Genaxis Theatre", "[06]", "###", 'a, "quoted" one', "one,two,three")
    assert annotation.dont_care.tolist() == [False, False, True, False, False]


def test_parse_empty_and_bad_lines():
    empty = icdar.parse_annotation_text("\ufeff")
    assert empty.quads.shape == (0, 4, 2) and empty.dont_care.shape == (0,)
    assert icdar.parse_detection_text("").shape == (0, 4, 2)
    with pytest.raises(icdar.IcdarFormatError, match=r"gt_img_7.txt:2: expected 8"):
        icdar.parse_annotation_text("1,2,3,4,5,6,7,8,ok\n1,2,3,x,5,6,7,8,bad\n", "gt_img_7.txt")
    with pytest.raises(icdar.IcdarFormatError, match=r"res.txt:1"):
        icdar.parse_detection_text("1,2,3,4,5,6,7\n", "res.txt")


def test_detections_ignore_a_trailing_score():
    det = icdar.parse_detection_text("1,2,3,4,5,6,7,8,0.93\n10,20,30,40,50,60,70,80\n")
    assert det.reshape(2, 8).tolist() == [[1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80]]


def test_write_round_trip(tmp_path):
    boxes = quads(rect(0.4, 1.6, 100.2, 20.5), rect(5, 5, 9, 9))
    path = tmp_path / "gt_img_1.txt"
    icdar.write_icdar_file(path, boxes, ["Genaxis, Theatre", "###"])
    assert path.read_bytes() == b"0,2,100,2,100,20,0,20,Genaxis, Theatre\r\n5,5,9,5,9,9,5,9,###\r\n"
    annotation = icdar.read_annotation_file(path)
    assert annotation.texts == ("Genaxis, Theatre", "###")
    assert annotation.dont_care.tolist() == [False, True]
    icdar.write_icdar_file(tmp_path / "res_img_1.txt", quads(), newline="\n")
    assert (tmp_path / "res_img_1.txt").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt_img_1.txt", "res_img_1.txt"]  # no temp files left


def _write_set(folder, files):
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


GT_FILES = {
    "gt_img_1.txt": "0,0,100,0,100,20,0,20,word\n0,50,100,50,100,70,0,70,###\n",
    "gt_img_2.txt": "0,0,100,0,100,20,0,20,word\n",
}


@pytest.mark.parametrize("prefix", ["res_", ""])
def test_evaluate_folders_both_namings(tmp_path, prefix):
    _write_set(tmp_path / "gt", GT_FILES)
    # img_1 perfect (the ### detection is ignored), img_2 without a result file.
    _write_set(tmp_path / "pred", {f"{prefix}img_1.txt": "0,0,100,0,100,20,0,20\r\n0,50,100,50,100,70,0,70\r\n",
                                   "summary.json": "{}"})
    result = icdar.evaluate_paths(tmp_path / "gt", tmp_path / "pred")
    assert (result.precision, result.recall, result.images, result.images_all_correct) == (1.0, 0.5, 2, 1)


def test_evaluate_zips_and_ambiguous_names(tmp_path):
    for name, files in (("gt.zip", GT_FILES), ("pred.zip", {"res_img_1.txt": "0,0,100,0,100,20,0,20\n",
                                                             "res_img_2.txt": "0,0,100,0,100,20,0,20\n"})):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for entry, text in files.items():
                archive.writestr(entry, text)
    result = icdar.evaluate_paths(tmp_path / "gt.zip", tmp_path / "pred.zip")
    assert result.summary() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "images": 2, "images_all_correct": 2}
    _write_set(tmp_path / "both", {"res_img_1.txt": "", "img_1.txt": ""})
    with pytest.raises(ValueError, match="both res_img_1.txt and img_1.txt"):
        icdar.evaluate_paths(tmp_path / "gt.zip", tmp_path / "both")


def test_cli_json_last_line(tmp_path, capsys):
    _write_set(tmp_path / "gt", GT_FILES)
    _write_set(tmp_path / "pred", {"res_img_1.txt": "0,0,100,0,100,20,0,20\n"})
    assert icdar.main(["evaluate", "--gt_path", str(tmp_path / "gt"), "--pred_path", str(tmp_path / "pred"),
                       "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "precision 1.000 recall 0.500 hmean 0.667; 1/2 images all correct"
    assert json.loads(lines[-1]) == {"precision": 1.0, "recall": 0.5, "hmean": 2 / 3, "images": 2,
                                     "images_all_correct": 1}


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    _write_set(tmp_path / "gt", {"gt_img_1.txt": "1,2,3\n"})
    assert icdar.main(["evaluate", "--gt_path", str(tmp_path / "gt"), "--pred_path", str(tmp_path)]) == 2
    assert "gt_img_1.txt:1: expected 8" in capsys.readouterr().err
    assert icdar.main(["evaluate", "--gt_path", str(tmp_path / "missing"), "--pred_path", str(tmp_path)]) == 2


def test_real_ground_truth_scores_one_against_itself(shared_data):
    gt_zip = shared_data / "icdar_real" / "icdar2015_test_gt_all.zip"
    if not gt_zip.is_file():
        pytest.skip(f"{gt_zip} is absent")
    result = icdar.evaluate_paths(gt_zip, gt_zip)
    assert result.summary() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "images": 500,
                                "images_all_correct": 500}
    assert result.gt_care == 2077  # the published count of care words in the ICDAR 2015 test set


def test_other_annotation_formats_go_through_data_preprocessor(tmp_path):
    pytest.importorskip("data_preprocessor")
    cv2 = pytest.importorskip("cv2")
    (tmp_path / "gt" / "images").mkdir(parents=True)
    for index in range(3):
        cv2.imwrite(str(tmp_path / "gt" / "images" / f"car{index}.jpg"), np.full((120, 200, 3), 100, np.uint8))
        (tmp_path / "gt" / "images" / f"car{index}.txt").write_text("20 30 120 30 120 60 20 60 ABC123\n")
    # car0 found, car1 empty result file, car2 no result file: P = 1/1, R = 1/3.
    _write_set(tmp_path / "pred", {"car0.txt": "20,30,120,30,120,60,20,60\n", "car1.txt": ""})
    for annotation_format in ("plate", "auto"):
        result = icdar.evaluate_paths(tmp_path / "gt", tmp_path / "pred", annotation_format)
        assert result.summary() == {"precision": 1.0, "recall": pytest.approx(1 / 3), "hmean": 0.5, "images": 3,
                                    "images_all_correct": 1}


def test_training_and_scoring_share_one_line_parser_and_dont_care_rule(tmp_path):
    import cv2

    import data_preprocessor

    lines = ['1,2,40,2,40,20,1,20,"###"', "1,30,40,30,40,50,1,50,*", '1,60,40,60,40,80,1,80,"a, \\"b\\""',
             "1,90,40,90,40,110,1,110,###", "1,120,40,120,40,140,1,140,### "]
    text = "\n".join(lines) + "\n"
    scored = icdar.parse_annotation_text(text, "gt_img_1.txt")
    (tmp_path / "gt_img_1.txt").write_text(text, encoding="utf-8")
    cv2.imwrite(str(tmp_path / "img_1.jpg"), np.zeros((160, 60, 3), np.uint8))
    trained = data_preprocessor.load_dataset(tmp_path, "icdar2015").samples[0]
    # Only an exact ###, after the official unquoting, is don't care; "*" and "### " are texts.
    assert scored.dont_care.tolist() == trained.dont_care.tolist() == [True, False, False, True, False]
    assert scored.texts == trained.texts == ("###", "*", 'a, "b"', "###", "### ")
    np.testing.assert_array_equal(scored.quads, trained.quads)


def test_cli_names_and_counts_missing_result_files(tmp_path):
    gt = {f"gt_img_{index}.txt": "0,0,100,0,100,20,0,20,word\n" for index in range(1, 9)}
    _write_set(tmp_path / "gt", gt)
    _write_set(tmp_path / "pred", {"res_img_1.txt": "0,0,100,0,100,20,0,20\n"})
    (tmp_path / "empty").mkdir()
    repo = Path(__file__).resolve().parents[1]
    for pred, missing in (("pred", 7), ("empty", 8)):
        completed = subprocess.run([sys.executable, "icdar.py", "evaluate", "--gt_path", str(tmp_path / "gt"),
                                    "--pred_path", str(tmp_path / pred)], cwd=repo, capture_output=True, text=True,
                                   timeout=120)
        assert completed.returncode == 0, completed.stderr
        first = 2 if pred == "pred" else 1
        shown = ", ".join(f"res_img_{index}.txt" for index in range(first, first + 5))
        assert (f"no result file for {missing} of 8 images ({shown} and {missing - 5} more); scored as images "
                f"without detections") in completed.stderr
        assert completed.stdout.strip().endswith(f"{8 - missing}/8 images all correct")
