"""Interaction ExampleGen: joins raw spans into labelled tf.Examples (spec/component/executor)."""
