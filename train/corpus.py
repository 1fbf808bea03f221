"""A small public-domain text for the character-level LSTM (no download needed).

The Gettysburg Address (Abraham Lincoln, 1863), the opening of the Declaration of Independence
(1776) and the opening paragraphs of Lewis Carroll's "Alice's Adventures in Wonderland" (1865),
all in the public domain. The ``text`` dataset collapses runs of white space to one space.
"""

CORPUS = """
Four score and seven years ago our fathers brought forth on this continent, a new nation,
conceived in Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived
and so dedicated, can long endure. We are met on a great battle-field of that war. We have come
to dedicate a portion of that field, as a final resting place for those who here gave their
lives that that nation might live. It is altogether fitting and proper that we should do this.
But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow -- this
ground. The brave men, living and dead, who struggled here, have consecrated it, far above our
poor power to add or detract. The world will little note, nor long remember what we say here,
but it can never forget what they did here. It is for us the living, rather, to be dedicated
here to the unfinished work which they who fought here have thus far so nobly advanced. It is
rather for us to be here dedicated to the great task remaining before us -- that from these
honored dead we take increased devotion to that cause for which they gave the last full measure
of devotion -- that we here highly resolve that these dead shall not have died in vain -- that
this nation, under God, shall have a new birth of freedom -- and that government of the people,
by the people, for the people, shall not perish from the earth.

When in the Course of human events, it becomes necessary for one people to dissolve the
political bands which have connected them with another, and to assume among the powers of the
earth, the separate and equal station to which the Laws of Nature and of Nature's God entitle
them, a decent respect to the opinions of mankind requires that they should declare the causes
which impel them to the separation. We hold these truths to be self-evident, that all men are
created equal, that they are endowed by their Creator with certain unalienable Rights, that
among these are Life, Liberty and the pursuit of Happiness. That to secure these rights,
Governments are instituted among Men, deriving their just powers from the consent of the
governed, That whenever any Form of Government becomes destructive of these ends, it is the Right
of the People to alter or to abolish it, and to institute new Government, laying its foundation
on such principles and organizing its powers in such form, as to them shall seem most likely to
effect their Safety and Happiness. Prudence, indeed, will dictate that Governments long
established should not be changed for light and transient causes; and accordingly all
experience hath shewn, that mankind are more disposed to suffer, while evils are sufferable,
than to right themselves by abolishing the forms to which they are accustomed. But when a long
train of abuses and usurpations, pursuing invariably the same Object evinces a design to reduce
them under absolute Despotism, it is their right, it is their duty, to throw off such
Government, and to provide new Guards for their future security.

Alice was beginning to get very tired of sitting by her sister on the bank, and of having
nothing to do: once or twice she had peeped into the book her sister was reading, but it had no
pictures or conversations in it, "and what is the use of a book," thought Alice "without
pictures or conversations?" So she was considering in her own mind (as well as she could, for
the hot day made her feel very sleepy and stupid), whether the pleasure of making a
daisy-chain would be worth the trouble of getting up and picking the daisies, when suddenly a
White Rabbit with pink eyes ran close by her. There was nothing so very remarkable in that; nor
did Alice think it so very much out of the way to hear the Rabbit say to itself, "Oh dear! Oh
dear! I shall be late!" (when she thought it over afterwards, it occurred to her that she ought
to have wondered at this, but at the time it all seemed quite natural); but when the Rabbit
actually took a watch out of its waistcoat-pocket, and looked at it, and then hurried on, Alice
started to her feet, for it flashed across her mind that she had never before seen a rabbit
with either a waistcoat-pocket, or a watch to take out of it, and burning with curiosity, she
ran across the field after it, and fortunately was just in time to see it pop down a large
rabbit-hole under the hedge. In another moment down went Alice after it, never once
considering how in the world she was to get out again. The rabbit-hole went straight on like a
tunnel for some way, and then dipped suddenly down, so suddenly that Alice had not a moment to
think about stopping herself before she found herself falling down a very deep well. Either the
well was very deep, or she fell very slowly, for she had plenty of time as she went down to look
about her and to wonder what was going to happen next. First, she tried to look down and make
out what she was coming to, but it was too dark to see anything; then she looked at the sides
of the well, and noticed that they were filled with cupboards and book-shelves; here and there
she saw maps and pictures hung upon pegs. She took down a jar from one of the shelves as she
passed; it was labelled "ORANGE MARMALADE", but to her great disappointment it was empty: she
did not like to drop the jar for fear of killing somebody underneath, so managed to put it into
one of the cupboards as she fell past it.
"""
