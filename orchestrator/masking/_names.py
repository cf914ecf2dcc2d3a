"""The names that first_name, last_name and full_name draw from: plausible, varied, ASCII."""

from __future__ import annotations

_FIRST = """
    Aaliyah Abdul Ada Adaeze Adrian Agnieszka Ahmed Aiko Aisha Akira Alejandro Alessandro Alice
    Amara Amir Ana Ananya Andrei Anika Anton Aoife Arjun Aroha Astrid Ayesha Beatriz Benjamin
    Bilal Bjorn Camila Carlos Carys Catalina Chen Chidi Chiara Chloe Clara Daniel Darius Deepa
    Diego Dmitri Elena Elif Eliza Emeka Emil Emma Emre Esther Ethan Fatima Felix Finn Francesca
    Freya Gabriel Giulia Grace Greta Hana Hannah Haruto Hassan Henrik Hiroshi Ibrahim Ines Ingrid
    Isabella Ivan Jakob James Jamal Javier Jin Joao Johanna Jonas Jose Julia Jun Kai Kamala Kavya
    Kemal Kenji Khalid Kofi Kwame Lars Layla Leila Leilani Leon Liam Lina Linh Lucas Lucia Luis
    Lukas Maja Malia Marco Maria Mariam Mateo Matteo Mei Mia Miguel Min-jun Minh Mohammed Nadia
    Naledi Nia Niamh Nikolai Noa Noah Nora Oisin Olga Oliver Omar Oscar Pablo Piotr Priya Rafael
    Rahul Ravi Rhys Rosa Ruth Sakura Samuel Sanjay Santiago Sara Seo-yeon Sofia Sven Tamar Tane
    Thabo Thanh Theo Tomasz Tunde Valentina Victor Wei Yara Yuki Yusuf Zanele Zara Zeynep Zoe
"""

_LAST = """
    Abara Adams Adeyemi Ahmed Ali Allen Almeida Andersen Andersson Bakker Baptiste Becker Berg
    Bernard Bianchi Brown Byrne Campbell Carter Castillo Celik Chen Choi Clarke Cohen Colombo
    Costa Cruz Davies Demir Diaz Dlamini Dubois Edwards Eriksson Esposito Evans Fernandes
    Ferrari Fischer Flores Fontaine Friedman Garcia Girard Gomez Gonzalez Gupta Haddad Hall
    Hansen Harris Hassan Hernandez Hoang Hoffmann Horvath Huang Hughes Hussein Ibrahim Ito Iyer
    Ivanov Jackson Jensen Johansson Johnson Jones Kamau Kaya Katz Kelly Khan Kim Kobayashi
    Korhonen Kowalski Kumar Larsen Laurent Le Lee Lefebvre Levi Li Lindqvist Liu Lopez
    MacDonald Mansour Martin Martinez Mendoza Mensah Meyer Miller Mitchell Morales Moreau Morgan
    Mueller Murphy Mwangi Nakamura Nasser Nguyen Nielsen Nkosi Novak Nowak Nunez Brennan Okafor
    Oliveira Ortiz Osei Otieno Park Patel Pereira Perez Petrov Pham Popescu Ramirez Reddy
    Reyes Ricci Rivera Roberts Robinson Rodriguez Romano Rossi Russo Sahin Sanchez Santos Sato
    Schmidt Schneider Schulz Shah Sharma Silva Singh Smirnov Smith Souza Suzuki Takahashi
    Tanaka Taylor Thompson Torres Tran Virtanen Volkov Vu Wagner Walker Walsh Wang Watanabe
    Weber White Williams Wilson Wisniewski Wojcik Wright Wu Yamamoto Yang Yilmaz Young Zhang
    Zhao
"""

FIRST_NAMES: tuple[str, ...] = tuple(_FIRST.split())
LAST_NAMES: tuple[str, ...] = tuple(_LAST.split())
