"""provkit.engines"""
