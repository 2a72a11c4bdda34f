"""dataset_conversion"""
