"""The Jinja2 prompt templates (see README "Prompts"); this file lets installed copies find them."""
