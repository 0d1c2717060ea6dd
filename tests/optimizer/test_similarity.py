from gome_agent.optimizer.similarity import TextIndex, max_similarity, tokens


def test_tokens_drop_stopwords_and_case():
    assert tokens("Use the LightGBM model with 5-fold CV") == ["lightgbm", "model", "5-fold", "cv"]


def test_related_text_ranks_higher():
    index = TextIndex([
        "replace logistic regression with gradient boosted trees",
        "add text length features from the comment",
        "average five stratified folds",
    ])
    sims = index.query("use gradient boosted trees instead of the linear model")
    assert sims[0] == max(sims)
    assert sims[0] > 0.3
    assert sims[1] == 0.0


def test_identical_text_has_similarity_one_and_empty_is_zero():
    index = TextIndex(["stratified k fold cross validation", "other"])
    assert abs(index.query("stratified k fold cross validation")[0] - 1.0) < 1e-9
    assert index.query("the and of") == [0.0, 0.0]
    assert max_similarity("anything", []) == 0.0
