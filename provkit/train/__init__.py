"""provkit.train"""
