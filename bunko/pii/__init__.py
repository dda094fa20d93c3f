"""Personal information in Japanese text: what is found (:mod:`bunko.pii.detect`), with which
recognisers (:mod:`bunko.pii.recognizers`), and what a collection's policy does with it."""
