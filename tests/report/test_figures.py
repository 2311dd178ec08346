from advgap.experiment.store import ModelRow, ResultStore
from advgap.report import analysis
from advgap.report.figures import render_all

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_figure_is_rendered_from_the_store(small_store, tmp_path):
    with ResultStore.read(small_store) as store:
        models = analysis.load(store)
    figures = render_all(models, tmp_path / "figs")
    names = sorted(f.path.name for f in figures)
    assert names == sorted([
        "cosine_vanilla.png", "heatmaps_vanilla.png", "bins_vanilla.png", "mean_minimal_delta.png",
        "attack_vs_exact.png", "relative_gap_cdf.png", "gap_vs_depth.png",
    ])
    for figure in figures:
        assert figure.path.read_bytes()[:8] == PNG and figure.path.stat().st_size > 5_000, figure.path
    titles = " ".join(f.title for f in figures)
    assert "study fig. 1" in titles and "study fig. 7" in titles


def test_a_store_without_complete_images_still_renders(tmp_path):
    with ResultStore.open(tmp_path, {"attacks": ["fgsm"]}) as store:
        store.put_model(ModelRow("empty", "x", {}))
    with ResultStore.read(tmp_path) as store:
        models = analysis.load(store)
    figures = render_all(models, tmp_path / "figs")
    assert len(figures) == 7 and all(f.path.read_bytes()[:8] == PNG for f in figures)
